"""Pure metric functions: KL with the paper's smoothing, shares, bootstrap intervals, BH, permutation test,
— against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anchors.metrics.bootstrap import (
    bias_corrected_interval,
    percentile_interval,
    resample_indices,
)
from anchors.metrics.distributions import PAPER_ALPHA, kl_from_counts, share
from anchors.metrics.fdr import benjamini_hochberg
from anchors.metrics.permutation import permutation_p_value


def paper_kl(p: dict[str, int], q: dict[str, int], alpha: float) -> float:
    """methods.md §4 written out literally, as a reference."""
    support = set(p) | set(q)
    n_p, n_q = sum(p.values()), sum(q.values())
    total = 0.0
    for a in support:
        pa = (p.get(a, 0) + alpha) / (n_p + alpha * len(support))
        qa = (q.get(a, 0) + alpha) / (n_q + alpha * len(support))
        total += pa * math.log(pa / qa)
    return max(total, 0.0)


@pytest.mark.parametrize("alpha", [PAPER_ALPHA, 0.5, 1.0])
def test_kl_matches_the_formula(alpha: float) -> None:
    p, q = {"a": 3, "b": 1}, {"a": 1, "b": 2, "c": 5}
    counts_p, counts_q = np.array([3, 1, 0, 0]), np.array([1, 2, 5, 0])  # a fourth category seen by neither
    assert kl_from_counts(counts_p, counts_q, alpha) == pytest.approx(paper_kl(p, q, alpha), rel=1e-12)


def test_kl_paper_alpha_is_heavy_tailed_and_zero_for_equal_distributions() -> None:
    # 100 rollouts all answering 'a' vs all answering 'b': ln(100 / 1e-9) nats, the paper's maximum
    assert kl_from_counts(np.array([100, 0]), np.array([0, 100]), PAPER_ALPHA) == pytest.approx(math.log(100 / 1e-9), rel=1e-6)
    assert kl_from_counts(np.array([4, 6]), np.array([4, 6]), 0.5) == pytest.approx(0.0, abs=1e-15)
    # smoothing is not scale-free: the same proportions from fewer rollouts sit closer to uniform
    assert 0 < kl_from_counts(np.array([4, 6]), np.array([2, 3]), 0.5) < 1e-3


def test_kl_empty_side_and_batches() -> None:
    assert math.isnan(kl_from_counts(np.array([0, 0]), np.array([1, 2]), 0.5))
    assert kl_from_counts(np.array([0, 0]), np.array([1, 2]), 0.5, empty=0.0) == 0.0
    batch = kl_from_counts(np.array([[3, 1], [0, 0], [2, 2]]), np.array([[1, 3], [1, 1], [2, 2]]), 0.5)
    assert batch[0] > 0 and math.isnan(batch[1]) and batch[2] == pytest.approx(0.0, abs=1e-15)


def test_share() -> None:
    out = share(np.array([1, 0, 3]), np.array([2, 0, 4]))
    assert out[0] == 0.5 and math.isnan(out[1]) and out[2] == 0.75
    assert share(np.array([0]), np.array([0]), empty=0.0)[0] == 0.0


def test_resample_indices_are_seeded_and_shaped() -> None:
    a = resample_indices(5, 100, np.random.default_rng(1))
    b = resample_indices(5, 100, np.random.default_rng(1))
    assert a.shape == (100, 5) and (a == b).all() and a.min() >= 0 and a.max() <= 4
    assert resample_indices(5, 0, np.random.default_rng(1)).tolist() == [[0, 1, 2, 3, 4]]
    assert resample_indices(0, 7, np.random.default_rng(1)).shape == (7, 0)


def test_percentile_interval_ignores_nan_replicates() -> None:
    replicates = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    lo, hi = percentile_interval(replicates, level=0.5)
    assert (lo[0], hi[0]) == (1.5, 2.5) and math.isnan(lo[1]) and math.isnan(hi[1])


def test_bias_corrected_interval_recentres_on_the_point() -> None:
    replicates = np.array([[0.3], [0.4], [0.5]])  # resampling biased upward by 0.4 from a point of 0
    lo, hi = bias_corrected_interval(np.array([0.0]), replicates, level=0.5, bounds=(0.0, 1.0))
    assert lo[0] == pytest.approx(0.0) and hi[0] == pytest.approx(0.05)


def test_benjamini_hochberg_by_hand_and_nan() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    adjusted, rejected = benjamini_hochberg(p, q=0.05)
    # sorted 0.01, 0.03, 0.04, 0.5 over m = 4 tests: 0.04, 0.0533, 0.0533, 0.5 (step-up minimum)
    assert adjusted[:4] == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert rejected.tolist() == [True, False, False, False, False] and math.isnan(adjusted[4])


def test_permutation_p_value() -> None:
    rng = np.random.default_rng(0)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return kl_from_counts(a, b, 0.5)

    same = permutation_p_value(np.array([0, 1] * 20), np.array([0, 1] * 20), 2, kl, 500, rng)
    different = permutation_p_value(np.zeros(30, dtype=int), np.ones(30, dtype=int), 2, kl, 500, rng)
    assert same > 0.5 and different == pytest.approx(1 / 501)
    assert math.isnan(permutation_p_value(np.array([], dtype=int), np.array([0]), 1, kl, 10, rng))
