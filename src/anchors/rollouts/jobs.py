"""Run a batch of prefix requests through a sampler and gather the rollouts per request.

`collect_rollouts` is the one entry point the methods use. This first version keeps everything in
memory; the rollout store (crash-safe, resumable) plugs in behind the same signature.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams


def collect_rollouts(
    sampler: Sampler,
    requests: Sequence[PrefixRequest],
    params: SamplingParams,
    *,
    store: str | Path | None = None,
    progress: bool = True,
) -> dict[str, list[Rollout]]:
    """All `n` rollouts of every request, keyed by request key, each list sorted by rollout index."""
    if store is not None:
        raise NotImplementedError("the rollout store is not built yet")
    _check_unique_keys(requests)
    grouped: dict[str, list[Rollout]] = defaultdict(list)
    for rollout in sampler.sample(requests, params):
        grouped[rollout.key].append(rollout)
    return {r.key: sorted(grouped[r.key], key=lambda x: x.index) for r in requests}


def _check_unique_keys(requests: Sequence[PrefixRequest]) -> None:
    keys = [r.key for r in requests]
    if len(set(keys)) != len(keys):
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"request keys must be unique within a job; repeated: {duplicated[:5]}")
