"""Sampling: on-policy trace generation now; the shared-prefix rollout engine and its store build on it."""
