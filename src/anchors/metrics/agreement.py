"""Rank agreement between per-sentence scores of different methods (Spearman, pairwise complete)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def rank_agreement(scores: Mapping[str, np.ndarray], *, min_pairs: int = 3) -> pd.DataFrame:
    """Spearman ρ for every pair of methods over the sentences where both are finite.

    Returns columns `a`, `b`, `spearman`, `p_value`, `n`; ρ and p are NaN with fewer than `min_pairs`
    sentences or when either side is constant.
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
        rows.append({"a": a, "b": b, "spearman": rho, "p_value": p, "n": int(ok.sum())})
    return pd.DataFrame(rows, columns=["a", "b", "spearman", "p_value", "n"])
