"""Trace records, JSONL I/O, segmentation into sentences with exact spans, and answer grading.

The bottom layer: imports nothing from models, rollouts, methods or viz.
"""
