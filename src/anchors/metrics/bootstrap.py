"""Bootstrap over rollouts: seeded resampling indices and percentile intervals."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from jaxtyping import Float, Int


def resample_indices(n: int, replicates: int, rng: np.random.Generator) -> Int[np.ndarray, "rep rollout"]:
    """`replicates` draws of n indices with replacement; with replicates == 0, the identity (one row)."""
    if replicates == 0:
        return np.arange(n)[None, :]
    if n == 0:
        return np.zeros((replicates, 0), dtype=np.int64)
    return rng.integers(0, n, size=(replicates, n))


def percentile_interval(
    replicates: Float[np.ndarray, "rep ..."], level: float = 0.95
) -> tuple[Float[np.ndarray, "..."], Float[np.ndarray, "..."]]:
    """The (1 − level)/2 and (1 + level)/2 quantiles over replicates, ignoring NaN replicates
    (NaN where every replicate is NaN)."""
    tail = (1.0 - level) / 2.0
    finite = np.isfinite(replicates).any(axis=0)
    safe = np.where(finite[None], replicates, 0.0)
    with np.errstate(invalid="ignore"), _quiet_all_nan():
        lo = np.nanquantile(safe, tail, axis=0)
        hi = np.nanquantile(safe, 1.0 - tail, axis=0)
    return np.where(finite, lo, np.nan), np.where(finite, hi, np.nan)


def bias_corrected_interval(
    point: Float[np.ndarray, "..."], replicates: Float[np.ndarray, "rep ..."], level: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[Float[np.ndarray, "..."], Float[np.ndarray, "..."]]:
    """The percentile interval shifted by the bootstrap's bias (mean of replicates − point), clipped to `bounds`.

    For statistics that resampling itself biases, e.g. the share of duplicated strings: drawing with
    replacement creates duplicates, so raw percentiles would sit above the point estimate."""
    lo, hi = percentile_interval(replicates, level)
    with np.errstate(invalid="ignore"), _quiet_all_nan():
        bias = np.nanmean(replicates, axis=0) - point
    return np.clip(lo - bias, *bounds), np.clip(hi - bias, *bounds)


@contextmanager
def _quiet_all_nan() -> Iterator[None]:
    """Silence numpy's 'All-NaN slice' / 'Mean of empty slice' warnings: those cases give NaN on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
