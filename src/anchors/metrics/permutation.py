"""Permutation test for a difference between two answer distributions (labels exchangeable under H0)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from jaxtyping import Int

# statistic(counts_a [rep cat], counts_b [rep cat]) -> [rep]
CountStatistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def category_counts(codes: Int[np.ndarray, "rep k"], categories: int) -> Int[np.ndarray, "rep cat"]:
    """Per row, how often each category code 0..categories-1 occurs."""
    reps = codes.shape[0]
    flat = (codes + categories * np.arange(reps)[:, None]).ravel()
    return np.bincount(flat, minlength=reps * categories).reshape(reps, categories)


def permutation_p_value(
    codes_a: Int[np.ndarray, " a"], codes_b: Int[np.ndarray, " b"], categories: int, statistic: CountStatistic,
    permutations: int, rng: np.random.Generator,
) -> float:
    """P(statistic ≥ observed) when the a/b labels are shuffled: (1 + #{perm ≥ obs}) / (1 + permutations).
    NaN when either group is empty (nothing to compare)."""
    if len(codes_a) == 0 or len(codes_b) == 0 or permutations <= 0:
        return float("nan")
    pooled = np.concatenate([codes_a, codes_b])
    observed = statistic(category_counts(codes_a[None], categories), category_counts(codes_b[None], categories))[0]
    shuffled = rng.permuted(np.tile(pooled, (permutations, 1)), axis=1)
    values = statistic(category_counts(shuffled[:, : len(codes_a)], categories),
                       category_counts(shuffled[:, len(codes_a) :], categories))
    # a relative tolerance: equal distributions give equal statistics up to rounding
    exceed = int((values >= observed - 1e-12 * max(1.0, abs(observed))).sum())
    return (1.0 + exceed) / (1.0 + permutations)
