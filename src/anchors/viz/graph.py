"""The sentence dependency graph: sentences on a circle in trace order, sized by importance, linked by the
strongest entries of a sentence→sentence matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float

from anchors.viz.style import NEGATIVE_COLOR, POSITIVE_COLOR, base_layout, short, tag_color, tag_label, tag_order
from anchors.viz import inputs
from anchors.viz.inputs import accepts_results

_CURVE_POINTS = 12  # points per edge: enough for a smooth arc, few enough for thousands of edges
_STRENGTH_BINS = 3  # edges are drawn in 3 opacity/width classes (one trace each) instead of one trace per edge


def circle_layout(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Clockwise from the top, in trace order."""
    angle = np.pi / 2 - 2 * np.pi * np.arange(n) / max(n, 1)
    return np.cos(angle), np.sin(angle)


def select_edges(
    matrix: np.ndarray, *, threshold: float | None = None, max_edges: int | None = None
) -> list[tuple[int, int, float]]:
    """(source, target, value) of the finite, non-zero entries with |value| ≥ `threshold`, strongest first,
    at most `max_edges` of them. Without a threshold, the `max_edges` strongest (default 2 per sentence,
    at most 400) are kept."""
    m = np.asarray(matrix, dtype=float)
    n = m.shape[0]
    limit = max_edges if max_edges is not None else min(2 * n, 400)
    src, dst = np.nonzero(np.isfinite(m) & (m != 0) & ~np.eye(n, dtype=bool))
    values = m[src, dst]
    keep = np.abs(values) >= threshold if threshold is not None else np.ones(values.size, dtype=bool)
    order = np.argsort(-np.abs(values[keep]), kind="stable")[:limit]
    return [(int(s), int(t), float(v)) for s, t, v in zip(src[keep][order], dst[keep][order], values[keep][order])]


def _arc(x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """A quadratic Bézier bowed toward the centre, so edges between neighbours stay near the rim."""
    t = np.linspace(0, 1, _CURVE_POINTS)
    cx, cy = (x0 + x1) * 0.25, (y0 + y1) * 0.25
    return (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t**2 * x1, (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t**2 * y1


def _edge_traces(edges: list[tuple[int, int, float]], xs: np.ndarray, ys: np.ndarray) -> list[go.Scatter]:
    if not edges:
        return []
    strengths = np.abs([v for _, _, v in edges])
    cuts = np.quantile(strengths, np.linspace(0, 1, _STRENGTH_BINS + 1)[1:-1]) if len(edges) > 1 else []
    traces = []
    for sign, color in ((1, POSITIVE_COLOR), (-1, NEGATIVE_COLOR)):
        for level in range(_STRENGTH_BINS):
            chosen = [e for e, s in zip(edges, strengths) if np.sign(e[2]) == sign and np.searchsorted(cuts, s, "right") == level]
            if chosen:
                traces.append(_edge_trace(chosen, xs, ys, color, level, sign))
    return traces


def _edge_trace(edges: list[tuple[int, int, float]], xs: np.ndarray, ys: np.ndarray, color: str, level: int, sign: int) -> go.Scatter:
    px, py = [], []
    for s, t, _ in edges:
        ax, ay = _arc(xs[s], ys[s], xs[t], ys[t])
        px += [*ax, None]
        py += [*ay, None]
    return go.Scatter(x=px, y=py, mode="lines", hoverinfo="skip", showlegend=level == _STRENGTH_BINS - 1,
                      name="positive link" if sign > 0 else "negative link", legendgroup=f"edges{sign}",
                      line=dict(color=color, width=0.6 + 1.2 * level), opacity=0.25 + 0.3 * level)


@accepts_results(inputs.graph)
def sentence_graph(
    matrix: Float[np.ndarray, "sent sent"],
    importance: Sequence[float] | np.ndarray | None = None,
    *,
    sentences: Sequence[str] | None = None,
    tags: Sequence[str | None] | None = None,
    threshold: float | None = None,
    max_edges: int | None = None,
    label: str = "importance",
    title: str | None = None,
) -> go.Figure:
    """Nodes on a circle (clockwise = trace order) coloured by tag and sized by |importance|; an edge for each
    kept [source, target] entry (`select_edges`), red when positive, blue when negative, thicker when stronger.
    Each node's `customdata[0]` is its sentence index."""
    m = np.asarray(matrix, dtype=float)
    n = m.shape[0]
    imp = np.zeros(n) if importance is None else np.asarray(importance, dtype=float).reshape(-1)
    texts = [f"sentence {i}" for i in range(n)] if sentences is None else [str(s) for s in sentences]
    labels = [None] * n if tags is None else list(tags)
    if imp.size != n or len(texts) != n or len(labels) != n:
        raise ValueError(f"the matrix has {n} sentences; importance, sentences and tags must too")
    xs, ys = circle_layout(n)
    edges = select_edges(m, threshold=threshold, max_edges=max_edges)
    fig = go.Figure(_edge_traces(edges, xs, ys))
    _add_nodes(fig, xs, ys, imp, texts, labels, edges, label)
    rule = f"|value| ≥ {threshold:g}" if threshold is not None else "strongest"
    base_layout(fig, title, showlegend=True, hovermode="closest", legend=dict(orientation="h", y=-0.05, itemsizing="constant"),
                xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"),
                annotations=[dict(text=f"{len(edges)} links ({rule}); clockwise from the top = trace order",
                                  x=0, y=1.0, xref="paper", yref="paper", showarrow=False, font=dict(size=11))])
    return fig


def _add_nodes(fig: go.Figure, xs: np.ndarray, ys: np.ndarray, imp: np.ndarray, texts: list[str],
               labels: list[str | None], edges: list[tuple[int, int, float]], label: str) -> None:
    magnitude = np.nan_to_num(np.abs(imp), nan=0.0)
    scale = magnitude.max() if magnitude.max() > 0 else 1.0
    sizes = 6 + 22 * np.sqrt(magnitude / scale)
    out_degree = np.bincount([s for s, _, _ in edges], minlength=len(xs)) if edges else np.zeros(len(xs), int)
    in_degree = np.bincount([t for _, t, _ in edges], minlength=len(xs)) if edges else np.zeros(len(xs), int)
    for tag in tag_order(labels):
        idx = np.array([i for i in range(len(xs)) if labels[i] == tag], dtype=int)
        custom = [[int(i), short(texts[i], 110), "NaN" if not np.isfinite(imp[i]) else f"{imp[i]:.4g}",
                   int(out_degree[i]), int(in_degree[i])] for i in idx]
        fig.add_scatter(x=xs[idx], y=ys[idx], mode="markers", name=tag_label(tag), customdata=custom,
                        marker=dict(size=sizes[idx], color=tag_color(tag), line=dict(color="white", width=1)),
                        hovertemplate=(f"<b>sentence %{{customdata[0]}}</b> · {tag_label(tag)}<br>%{{customdata[1]}}<br>"
                                       f"{label}: %{{customdata[2]}}<br>links out %{{customdata[3]}}, in %{{customdata[4]}}"
                                       "<extra></extra>"))
