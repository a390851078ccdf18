"""Synthetic results for exercising the figures and the report (tests, benchmarks, documentation).

Random numbers with a planted structure (one "anchor" sentence whose removal changes many later ones), in
exactly the shapes real results have. They are never a measurement of any model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anchors.metrics.categories import PAPER_METRICS
from anchors.results.trace import TraceResults
from anchors.viz.style import TAG_COLORS

_WORDS = ("so", "the", "answer", "is", "we", "need", "to", "check", "wait", "compute", "sum", "of", "then", "let",
          "me", "first", "area", "times", "plus", "minus", "equals", "hmm", "maybe", "again")


def synthetic_results(
    n_sentences: int = 40,
    *,
    n_rollouts: int = 20,
    n_layers: int = 6,
    n_heads: int = 4,
    anchor: int | None = None,
    seed: int = 0,
    trace_id: str = "synthetic",
    with_ci: bool = True,
) -> TraceResults:
    """A complete TraceResults: every paper metric (with bootstrap-like intervals), both matrices, receiver
    heads with vertical scores, early-answering curves, and `n_rollouts` alternatives per sentence."""
    rng = np.random.default_rng(seed)
    n = n_sentences
    anchor = n // 3 if anchor is None else anchor
    tags = list(TAG_COLORS)
    table = pd.DataFrame({
        "index": np.arange(n),
        "text": [_sentence(rng, i) for i in range(n)],
        "tag": [tags[int(rng.integers(len(tags)))] for _ in range(n)],
        "accuracy": np.clip(0.5 + 0.4 * (np.arange(n) > anchor) + rng.normal(0, 0.05, n), 0, 1),
    })
    for metric in PAPER_METRICS:
        values = np.abs(rng.gamma(0.6, 0.2, n))
        values[min(anchor, n - 1)] += 2.0
        values[-1] = 0.0  # the last sentence gets 0 for every metric (methods.md §4)
        table[metric] = values
        if with_ci:
            spread = np.abs(rng.normal(0.1, 0.03, n))
            table[f"{metric}_lo"], table[f"{metric}_hi"] = values - spread, values + spread
    table["n_rollouts"] = n_rollouts
    return TraceResults(
        trace_id=trace_id, sentences=table, matrices=_matrices(rng, n, anchor),
        **_receivers(rng, n, n_layers, n_heads), early_answering=_early_answering(rng),
        alternatives={i: [_sentence(rng, i) for _ in range(n_rollouts)] for i in range(n)},
        info={"problem": "A synthetic problem (random numbers, for testing the report).", "answer": "42",
              "gold_answer": "42", "is_correct": True, "model": "synthetic"},
    )


def _sentence(rng: np.random.Generator, i: int) -> str:
    words = rng.choice(_WORDS, size=int(rng.integers(5, 16)))
    return f"Step {i}: " + " ".join(words) + "."


def _matrices(rng: np.random.Generator, n: int, anchor: int) -> dict[str, np.ndarray]:
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    resampling = np.where(upper, np.round(rng.normal(0, 0.05, (n, n)), 2), np.nan)
    if 0 <= anchor < n:
        resampling[anchor, anchor + 1:] += 0.4
    suppression = np.where(upper, rng.normal(0, 1, (n, n)), np.nan)
    return {"resampling": resampling, "suppression": suppression}


def _receivers(rng: np.random.Generator, n: int, layers: int, heads: int) -> dict[str, object]:
    kurtosis = rng.gamma(2.0, 1.5, (layers, heads))
    top = np.argsort(-kurtosis, axis=None)[: min(4, kurtosis.size)]
    vertical = rng.gamma(1.0, 0.01, (layers, heads, n))
    vertical[..., max(n - 4, 0):] = np.nan  # proximity_ignore = 4: the last sentences have no score
    receiver_heads = tuple((int(k // heads), int(k % heads)) for k in top)
    return {"head_scores": kurtosis, "vertical_scores": vertical, "receiver_heads": receiver_heads}


def _early_answering(rng: np.random.Generator) -> pd.DataFrame:
    fractions = np.linspace(0, 1, 11)
    rows = []
    for group, speed in (("short traces", 3.0), ("long traces", 1.5)):
        agreement = 1 - np.exp(-speed * fractions) * 0.8 + rng.normal(0, 0.01, fractions.size)
        agreement = np.clip(agreement, 0, 1)
        rows += [{"group": group, "fraction": f, "agreement": a, "agreement_lo": max(a - 0.05, 0),
                  "agreement_hi": min(a + 0.05, 1)} for f, a in zip(fractions, agreement)]
    return pd.DataFrame(rows)
