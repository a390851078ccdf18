"""Curves over the fraction of a trace kept (early answering, mistakes by position) and answer comparisons.

Pure functions on numbers: no model, no rollouts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from anchors.metrics.distributions import JEFFREYS_ALPHA, kl_from_counts


def curve_on_grid(
    x: Sequence[float], y: Sequence[float], grid: Float[np.ndarray, " point"]
) -> Float[np.ndarray, " point"]:
    """`y(x)` linearly interpolated onto `grid`, flat beyond the first/last defined point; NaN points are
    skipped; all NaN if fewer than one point is defined."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if not keep.any():
        return np.full(len(grid), np.nan)
    order = np.argsort(xs[keep], kind="stable")
    return np.interp(grid, xs[keep][order], ys[keep][order])


def area_over_curve(x: Sequence[float], y: Sequence[float]) -> float:
    """Lanham et al.'s AOC: the area between y = 1 and the curve y(x) over x in [0, 1] (trapezoids).

    x is the fraction of the trace kept, y the share of answers equal to the full-trace answer. Points with
    NaN y are skipped; the curve is held flat before its first and after its last defined point. NaN when
    fewer than two points are defined (no curve to integrate).
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if keep.sum() < 2:
        return float("nan")
    order = np.argsort(xs[keep], kind="stable")
    px, py = xs[keep][order], ys[keep][order]
    px = np.concatenate([[0.0], px, [1.0]])
    py = np.concatenate([[py[0]], py, [py[-1]]])
    return float(np.sum((px[1:] - px[:-1]) * ((1 - py[1:]) + (1 - py[:-1])) / 2))


def normalized_aoc(aoc: float, y_at_zero: float, min_gap: float = 0.1) -> float:
    """AOC / (1 − y(0)): the AOC relative to the largest it could be given the no-trace baseline.

    Why (Bentham et al. 2024): the raw AOC is small whenever the model already gives the full-trace answer
    with no trace at all (y(0) near 1), which happens mostly on problems it finds easy — so the raw metric
    tracks accuracy. Dividing by 1 − y(0) removes that baseline: if y jumps from y(0) to 1 at x*, the
    normalised AOC is x*, the share of the trace read before the answer settles. NaN when 1 − y(0) < min_gap
    (the trace could barely change the answer; nothing to normalise).
    """
    gap = 1.0 - y_at_zero
    if not np.isfinite(aoc) or not np.isfinite(gap) or gap < min_gap:
        return float("nan")
    return float(aoc / gap)


def evenly_spaced(items: Sequence[int], count: int) -> list[int]:
    """`count` items spread evenly: the centres of `count` equal slices (one item: the middle one)."""
    if count <= 0 or not items:
        return []
    if len(items) <= count:
        return list(items)
    return [items[int((j + 0.5) * len(items) / count)] for j in range(count)]


def mean_and_se(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, standard error (sd with ddof=1 / √n) and n of the finite values; NaN where undefined."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else float("nan")
    return float(finite.mean()), se, int(finite.size)


def rate(hits: Sequence[bool | None]) -> tuple[float, int]:
    """Share of True among the non-None entries, and how many there were (NaN share if none)."""
    known = [bool(h) for h in hits if h is not None]
    return (sum(known) / len(known) if known else float("nan")), len(known)


def answer_kl(p_answers: Sequence[str], q_answers: Sequence[str], alpha: float = JEFFREYS_ALPHA) -> float:
    """KL(P‖Q) between two answer samples (`kl_from_counts` over the answers seen on either side); NaN if
    either side is empty."""
    support = sorted(set(p_answers) | set(q_answers))
    p_counts, q_counts = Counter(p_answers), Counter(q_answers)
    return float(kl_from_counts(np.array([p_counts[a] for a in support]), np.array([q_counts[a] for a in support]), alpha))
