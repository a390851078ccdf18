"""Rank agreement between per-sentence scores of different methods (Spearman, pairwise complete)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def rank_agreement(scores: Mapping[str, np.ndarray], *, min_pairs: int = 3, bootstrap: int = 0, level: float = 0.95,
                   top: int = 5, seed: int = 0) -> pd.DataFrame:
    """Spearman ρ for every pair of methods over the sentences where both are finite.

    Returns columns `a`, `b`, `spearman`, `p_value`, `n`, and with `bootstrap` > 0 a percentile interval
    `spearman_lo`/`spearman_hi` (sentences resampled with replacement, seeded), and `top_overlap`: how many of each
    method's `top` highest-scoring sentences the other also ranks in its top `top`. ρ and p are NaN with fewer than
    `min_pairs` sentences or when either side is constant.
    """
    arrays = {name: np.asarray(v, dtype=float).reshape(-1) for name, v in scores.items()}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) > 1:
        raise ValueError(f"every method needs one score per sentence; got lengths {sorted(sizes)}")
    rows = []
    for a, b in combinations(arrays, 2):
        x, y = arrays[a], arrays[b]
        ok = np.isfinite(x) & np.isfinite(y)
        rho, p = np.nan, np.nan
        if ok.sum() >= min_pairs and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
            result = spearmanr(x[ok], y[ok])
            rho, p = float(result.statistic), float(result.pvalue)
        row = {"a": a, "b": b, "spearman": rho, "p_value": p, "n": int(ok.sum())}
        if bootstrap:
            row["spearman_lo"], row["spearman_hi"] = _interval(x[ok], y[ok], bootstrap, level, seed, min_pairs)
        row["top_overlap"] = top_overlap(x[ok], y[ok], top)
        rows.append(row)
    columns = ["a", "b", "spearman", "p_value", "n"] + (["spearman_lo", "spearman_hi"] if bootstrap else []) + ["top_overlap"]
    return pd.DataFrame(rows, columns=columns)


def top_overlap(x: np.ndarray, y: np.ndarray, k: int) -> int:
    """|top-k of x ∩ top-k of y| (ties broken by position), over sentences both score."""
    k = min(k, len(x))
    if k == 0:
        return 0
    return len(set(np.argsort(-x, kind="stable")[:k]) & set(np.argsort(-y, kind="stable")[:k]))


def _interval(x: np.ndarray, y: np.ndarray, replicates: int, level: float, seed: int, min_pairs: int) -> tuple[float, float]:
    if len(x) < min_pairs or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(replicates, len(x)))
    values = []
    for idx in draws:
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:
            values.append(spearmanr(x[idx], y[idx]).statistic)
    if not values:
        return np.nan, np.nan
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
