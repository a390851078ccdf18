"""Per-sentence figures: importance bars with CI whiskers coloured by tag, and importance against position."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float

from anchors.viz.style import base_layout, short, tag_color, tag_label, tag_order

ArrayLike = Sequence[float] | np.ndarray


def _as_float(values: ArrayLike | None, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} has {arr.size} values but there are {n} sentences")
    return arr


def _defaults(n: int, sentences: Sequence[str] | None, tags: Sequence[str | None] | None) -> tuple[list[str], list[str | None]]:
    texts = [f"sentence {i}" for i in range(n)] if sentences is None else [str(s) for s in sentences]
    labels = [None] * n if tags is None else list(tags)
    if len(texts) != n or len(labels) != n:
        raise ValueError(f"expected {n} sentences and tags, got {len(texts)} and {len(labels)}")
    return texts, labels


def importance_bars(
    values: Float[np.ndarray, " sent"] | ArrayLike,
    *,
    sentences: Sequence[str] | None = None,
    tags: Sequence[str | None] | None = None,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    label: str = "importance",
    title: str | None = None,
    details: Sequence[str] | None = None,
) -> go.Figure:
    """One bar per sentence (x = index), coloured by function tag, with CI whiskers from `lower`/`upper`.

    NaN values are drawn as gaps. `details` adds one HTML snippet per sentence to the hover box (e.g. every
    other metric with its interval). Each bar's `customdata[0]` is the sentence index (for click handlers).
    """
    y = _as_float(values, len(values), "values")
    n = y.size
    texts, labels = _defaults(n, sentences, tags)
    lo, hi = _as_float(lower, n, "lower"), _as_float(upper, n, "upper")
    extra = [""] * n if details is None else [str(d) for d in details]
    fig = go.Figure()
    for tag in tag_order(labels):
        idx = np.array([i for i in range(n) if labels[i] == tag], dtype=int)
        error = None
        if lo is not None and hi is not None:
            error = dict(type="data", symmetric=False, array=np.clip(hi[idx] - y[idx], 0, None),
                         arrayminus=np.clip(y[idx] - lo[idx], 0, None), thickness=1, width=0, color="#444")
        custom = [[int(i), short(texts[i], 120), _interval_text(y[i], lo, hi, i), extra[i]] for i in idx]
        # An explicit width: per-tag traces would each pick a width from their own (wider) spacing and overlap.
        fig.add_bar(x=idx, y=y[idx], width=0.8, name=tag_label(tag), marker_color=tag_color(tag), error_y=error,
                    customdata=custom, hovertemplate=(f"<b>sentence %{{customdata[0]}}</b> · {tag_label(tag)}<br>"
                                                      f"%{{customdata[1]}}<br>{label}: %{{customdata[2]}}"
                                                      "%{customdata[3]}<extra></extra>"))
    base_layout(fig, title, barmode="overlay", bargap=0.1, yaxis_title=label,
                xaxis=dict(title="sentence", range=[-0.6, n - 0.4]),
                legend=dict(title="tag", orientation="h", y=-0.2), hovermode="closest")
    return fig


def _interval_text(value: float, lo: np.ndarray | None, hi: np.ndarray | None, i: int) -> str:
    if not np.isfinite(value):
        return "NaN (undefined)"
    if lo is None or hi is None or not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
        return f"{value:.4g}"
    return f"{value:.4g} [{lo[i]:.4g}, {hi[i]:.4g}]"


def normalised_positions(n: int) -> np.ndarray:
    """index / (n - 1); 0.5 for a single sentence (as in the paper's figures)."""
    return np.arange(n) / (n - 1) if n > 1 else np.full(n, 0.5)


def importance_by_position(
    values: ArrayLike,
    positions: ArrayLike | None = None,
    *,
    sentences: Sequence[str] | None = None,
    tags: Sequence[str | None] | None = None,
    groups: Sequence[str] | None = None,
    label: str = "importance",
    title: str | None = None,
    bins: int = 10,
) -> go.Figure:
    """Each sentence's value against its normalised position in its trace (0 = first, 1 = last), coloured by
    tag, with the mean per position bin as a line. `positions` defaults to one trace's index / (n - 1);
    `groups` (e.g. trace ids) is shown on hover when sentences of several traces are pooled."""
    y = np.asarray(values, dtype=float).reshape(-1)
    n = y.size
    x = normalised_positions(n) if positions is None else _as_float(positions, n, "positions")
    texts, labels = _defaults(n, sentences, tags)
    where = [""] * n if groups is None else [f"{g} · " for g in groups]
    fig = go.Figure()
    for tag in tag_order(labels):
        idx = np.array([i for i in range(n) if labels[i] == tag], dtype=int)
        custom = [[int(i), where[i], short(texts[i], 100), f"{y[i]:.4g}"] for i in idx]  # [0]: the sentence index
        fig.add_scatter(x=x[idx], y=y[idx], mode="markers", name=tag_label(tag), customdata=custom,
                        marker=dict(color=tag_color(tag), size=6, opacity=0.7),
                        hovertemplate=(f"%{{customdata[1]}}{tag_label(tag)} · position %{{x:.2f}}<br>"
                                       f"%{{customdata[2]}}<br>{label}: %{{customdata[3]}}<extra></extra>"))
    centres, means = binned_means(x, y, bins)
    fig.add_scatter(x=centres, y=means, mode="lines+markers", name=f"mean per {1 / bins:.0%} bin",
                    line=dict(color="#333", width=2), marker=dict(size=5))
    base_layout(fig, title, xaxis=dict(title="normalised position in trace", range=[-0.03, 1.03]),
                yaxis_title=label, legend=dict(title="tag", orientation="h", y=-0.2))
    return fig


def binned_means(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the finite y per equal-width bin of x in [0, 1]; bins with no value are left out."""
    ok = np.isfinite(x) & np.isfinite(y)
    which = np.clip((x[ok] * bins).astype(int), 0, bins - 1)
    sums, counts = np.bincount(which, y[ok], bins), np.bincount(which, minlength=bins)
    filled = counts > 0
    return ((np.arange(bins) + 0.5) / bins)[filled], sums[filled] / counts[filled]
