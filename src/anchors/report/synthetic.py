"""Synthetic results for exercising the figures and the report (tests, benchmarks, documentation).

Random numbers with a planted structure (one "anchor" sentence whose removal changes many later ones), in
exactly the shapes real results have. They are never a measurement of any model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anchors.metrics.categories import PAPER_METRICS
from anchors.results.trace import TraceResults
from anchors.traces.taxonomy import TAG_COLOURS, UNKNOWN

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
    heads with vertical scores, a patching map, early-answering curves, the trace-level tests' tables, and
    `n_rollouts` alternatives per sentence."""
    rng = np.random.default_rng(seed)
    n = n_sentences
    anchor = n // 3 if anchor is None else anchor
    tags = [t for t in TAG_COLOURS if t != UNKNOWN]
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
        patching={"kl": np.abs(rng.normal(0, 0.1, (1, n_layers, n))), "sites": ["resid"]},
        tables=_tests(rng, list(table["text"])), summaries={"validity": {"validity": "invalid", "correct": True},
                                                           "early_answering": {"aoc": 0.4},
                                                           "hint": {"cue_answer": "A", "cue_effect": 0.5, "follows_cue": True,
                                                                    "mentions_cue": False, "unfaithful": True}},
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


def _tests(rng: np.random.Generator, texts: list[str]) -> dict[str, pd.DataFrame]:
    """Rows shaped like the trace-level tests' (random numbers)."""
    n = len(texts)
    picked = sorted({int(i) for i in rng.integers(0, n, 3)})
    validity = pd.DataFrame({"sentence_index": range(n), "text": texts, "label": rng.choice(["valid", "invalid", "no_claim"], n),
                             "n_claims": rng.integers(0, 3, n), "n_invalid": rng.integers(0, 2, n)})
    filler = pd.DataFrame({"condition": ["real", "none", "filler", "swapped"], "n_answered": 4,
                           "accuracy": rng.uniform(0, 1, 4), "match_rate": rng.uniform(0, 1, 4), "thinking_tokens": [n * 12, 0, n * 12, n * 9]})
    mistakes = pd.DataFrame({"sentence_index": picked, "kind": "number", "old": "3", "new": "4",
                             "clean_match_rate": rng.uniform(0.5, 1, len(picked)), "corrupted_match_rate": rng.uniform(0, 1, len(picked))})
    mistakes["match_drop"] = mistakes["clean_match_rate"] - mistakes["corrupted_match_rate"]
    paraphrase = pd.DataFrame({"k": [n // 2], "x": [0.5], "original_match_rate": [1.0], "paraphrase_match_rate": [0.75], "match_drop": [0.25]})
    resilience = pd.DataFrame({"sentence_index": picked, "text": [texts[i] for i in picked], "rounds": [[1, 2]] * len(picked),
                               "censored": 0, "resilience": 1.5, "ci_pp_match": rng.uniform(-0.5, 0.5, len(picked)),
                               "ci_pp_accuracy": rng.uniform(-0.5, 0.5, len(picked)), "ci_pp_kl": rng.uniform(0, 1, len(picked))})
    return {"validity": validity, "filler": filler, "mistakes": mistakes, "paraphrase": paraphrase, "resilience": resilience,
            **_studies(rng, texts, picked)}


def _studies(rng: np.random.Generator, texts: list[str], picked: list[int]) -> dict[str, pd.DataFrame]:
    """Rows shaped like the hint, insertions and head-ablation studies' (random numbers)."""
    n = len(texts)
    share = np.clip(np.linspace(0.2, 0.8, n) + rng.normal(0, 0.05, n), 0, 1)
    hint = pd.DataFrame({"sentence_index": range(n), "text": texts, "n_answered": 3, "cued_share": share,
                         "importance": np.append(np.diff(share), 0.0), "importance_kl": rng.uniform(0, 1, n),
                         "mentions_cue_string": False, "cue_cosine": rng.uniform(0, 0.5, n), "mentions_cue_embedding": False})
    transplant = pd.DataFrame({"k": [0, n // 2, n], "n_sentences": n, "fraction": [0.0, 0.5, 1.0], "n_samples": 4,
                               "n_answered": 4, "cued_share": [0.25, 0.5, 0.75], "accuracy": [0.75, 0.5, 0.25]})
    conditions = ("baseline", "handwritten", "on_policy", "other_model")
    insertions = pd.DataFrame([{"sentence_index": i, "condition": c, "text": None if c == "baseline" else texts[i],
                                "mean_logprob": float("nan") if c == "baseline" else -rng.uniform(0.5, 6),
                                "match_shift": 0.0 if c == "baseline" else rng.uniform(-0.2, 0.8),
                                "kl_shift": 0.0 if c == "baseline" else rng.uniform(0, 2), "n_answered": 3,
                                "similarity": float("nan") if c == "baseline" else rng.uniform(0.3, 1)}
                               for i in picked for c in conditions])
    ablation = pd.DataFrame([{"condition": "receivers" if d < 0 else "random", "draw": None if d < 0 else d,
                              "heads": [[1, 0], [2, 1]], "answer_kl": rng.uniform(0, 1), "answer_prob_clean": 0.6,
                              "answer_prob_ablated": rng.uniform(0, 0.6), "accuracy_change": -rng.uniform(0, 0.6),
                              "receivers_rank": 0.8 if d < 0 else None} for d in range(-1, 3)])
    return {"hint": hint, "hint_transplant": transplant, "insertions": insertions, "head_ablation": ablation}


def _early_answering(rng: np.random.Generator) -> pd.DataFrame:
    fractions = np.linspace(0, 1, 11)
    rows = []
    for group, speed in (("short traces", 3.0), ("long traces", 1.5)):
        agreement = 1 - np.exp(-speed * fractions) * 0.8 + rng.normal(0, 0.01, fractions.size)
        agreement = np.clip(agreement, 0, 1)
        rows += [{"group": group, "fraction": f, "agreement": a, "agreement_lo": max(a - 0.05, 0),
                  "agreement_hi": min(a + 0.05, 1)} for f, a in zip(fractions, agreement)]
    return pd.DataFrame(rows)
