"""Sentence-level attention arithmetic (methods.md §6): reductions, vertical scores, kurtosis, receiver heads.

Conventions: a sentence x sentence matrix `A[i, j]` is the mean attention from the tokens of sentence i
(queries, rows) to the tokens of sentence j (keys, columns). NaN means "undefined" (no valid entries),
never "not computed".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float, Int
from scipy import stats

__all__ = [
    "head_kurtosis",
    "receiver_scores",
    "sentence_sums",
    "split_half_reliability",
    "top_heads",
    "vertical_scores",
]


def sentence_sums(
    pattern: Float[torch.Tensor, "head q k"],
    row_owner: Int[torch.Tensor, " q"],
    col_owner: Int[torch.Tensor, " k"],
    n_sentences: int,
) -> Float[torch.Tensor, "head sent sent"]:
    """Sum of `pattern` over each (query sentence, key sentence) block.

    `row_owner[q]` / `col_owner[k]` give the sentence of each query / key, or `n_sentences` for tokens
    that belong to no sentence (dropped). Cost is one pass over `pattern` (two index_adds), so it can
    run on every chunk of every layer as the forward pass goes.
    """
    heads, queries, _ = pattern.shape
    by_key = pattern.new_zeros(heads, queries, n_sentences + 1).index_add_(2, col_owner, pattern)
    blocks = pattern.new_zeros(heads, n_sentences + 1, n_sentences + 1).index_add_(1, row_owner, by_key)
    return blocks[:, :n_sentences, :n_sentences]


def vertical_scores(
    matrix: Float[np.ndarray, "*batch sent sent"], proximity_ignore: int = 4, control_depth: bool = False
) -> Float[np.ndarray, "*batch sent"]:
    """Vertical score of each sentence j: mean of `matrix[i, j]` over later sentences i >= j + proximity_ignore.

    `control_depth` first replaces each row by the ranks of its valid entries divided by their count, so
    a late sentence (whose row spreads attention over more sentences) weighs as much as an early one.
    Sentences with no row far enough below them (the last `proximity_ignore`) get NaN.
    """
    n = matrix.shape[-1]
    rows, cols = np.indices((n, n))
    valid = rows - cols >= proximity_ignore
    values = np.where(valid, matrix, np.nan).astype(np.float64)
    if control_depth:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ranks = stats.rankdata(values, axis=-1, nan_policy="omit")
        values = ranks / np.maximum(valid.sum(axis=-1), 1)[:, None]
    counts = valid.sum(axis=-2)
    sums = np.nansum(values, axis=-2)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def head_kurtosis(vertical: Float[np.ndarray, "*batch sent"]) -> Float[np.ndarray, "*batch"]:
    """Fisher kurtosis (biased, NaN omitted) of each head's vertical scores; NaN when fewer than 2 values
    or all equal. High kurtosis = the head's attention is concentrated on a few sentences."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample and constant-row warnings: the NaN says it
        result = stats.kurtosis(vertical, axis=-1, fisher=True, bias=True, nan_policy="omit")
    return np.asarray(np.ma.filled(result, np.nan), dtype=np.float64)


def top_heads(
    mean_kurtosis: Float[np.ndarray, "layer head"], k: int, exclude_layers: Sequence[int] = (0,)
) -> list[tuple[int, int]]:
    """The `k` (layer, head) pairs of highest kurtosis, best first, skipping NaN heads and `exclude_layers`."""
    scores = np.array(mean_kurtosis, dtype=np.float64)
    for layer in exclude_layers:
        if 0 <= layer < scores.shape[0]:
            scores[layer] = np.nan
    order = np.argsort(np.where(np.isnan(scores), -np.inf, scores), axis=None)[::-1]
    valid = [divmod(int(i), scores.shape[1]) for i in order if not np.isnan(scores.flat[i])]
    return valid[:k]


def receiver_scores(
    vertical: Float[np.ndarray, "layer head sent"], heads: Sequence[tuple[int, int]]
) -> Float[np.ndarray, " sent"]:
    """Per-sentence receiver-head score: mean vertical score over `heads` (NaN where all are NaN)."""
    if not heads:
        return np.full(vertical.shape[-1], np.nan)
    picked = np.stack([vertical[layer, head] for layer, head in heads])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmean(picked, axis=0)


def split_half_reliability(
    kurtosis: Float[np.ndarray, "trace layer head"], exclude_layers: Sequence[int] = (0,)
) -> float | None:
    """Pearson r across heads between mean kurtosis on even-indexed and odd-indexed traces.

    None when there are fewer than 2 traces (not computed); NaN when r is undefined (fewer than 3 heads
    with both halves defined, or a constant half)."""
    if kurtosis.shape[0] < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        even, odd = np.nanmean(kurtosis[0::2], axis=0), np.nanmean(kurtosis[1::2], axis=0)
    keep = np.ones(even.shape, dtype=bool)
    keep[[layer for layer in exclude_layers if 0 <= layer < keep.shape[0]]] = False
    keep &= ~np.isnan(even) & ~np.isnan(odd)
    x, y = even[keep], odd[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's "nearly constant input" note: r is still what we report
        return float(stats.pearsonr(x, y).statistic)
