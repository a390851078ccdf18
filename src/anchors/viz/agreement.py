"""Method agreement: each pair of per-sentence scores against each other, Spearman ρ in the panel title."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from anchors.metrics.agreement import rank_agreement
from anchors.viz.style import base_layout, metric_label, short, tag_color, tag_label, tag_order


def method_agreement(
    scores: Mapping[str, Sequence[float] | np.ndarray],
    *,
    sentences: Sequence[str] | None = None,
    tags: Sequence[str | None] | None = None,
    title: str | None = None,
    bootstrap: int = 1000,
    top: int = 5,
) -> go.Figure:
    """A panel per pair of methods (e.g. counterfactual, forced, receiver, suppression): one point per
    sentence, coloured by tag; the panel title gives Spearman ρ over the sentences where both are finite, its
    bootstrap interval (`bootstrap` resamples of the sentences) and how many of the `top` sentences both rank top."""
    names = list(scores)
    if len(names) < 2:
        raise ValueError("method agreement needs scores from at least two methods")
    arrays = {k: np.asarray(v, dtype=float).reshape(-1) for k, v in scores.items()}
    agreement = rank_agreement(arrays, bootstrap=bootstrap, top=top)
    n = len(next(iter(arrays.values())))
    texts = [f"sentence {i}" for i in range(n)] if sentences is None else list(sentences)
    labels = [None] * n if tags is None else list(tags)
    pairs = list(combinations(names, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    titles = [_panel_title(agreement, a, b, top) for a, b in pairs]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08, vertical_spacing=0.16)
    for k, (a, b) in enumerate(pairs):
        _add_pair(fig, arrays[a], arrays[b], texts, labels, k // cols + 1, k % cols + 1, first=k == 0)
        fig.update_xaxes(title_text=metric_label(a), row=k // cols + 1, col=k % cols + 1)
        fig.update_yaxes(title_text=metric_label(b), row=k // cols + 1, col=k % cols + 1)
    base_layout(fig, title, height=max(380, 330 * rows), legend=dict(title="tag", orientation="h", y=-0.12))
    return fig


def _panel_title(agreement, a: str, b: str, top: int) -> str:
    row = agreement[(agreement["a"] == a) & (agreement["b"] == b)].iloc[0]
    rho = "n/a" if not np.isfinite(row["spearman"]) else f"{row['spearman']:.2f}"
    if "spearman_lo" in row and np.isfinite(row["spearman_lo"]):
        rho += f" [{row['spearman_lo']:.2f}, {row['spearman_hi']:.2f}]"
    return f"ρ = {rho}, top {top} shared: {row['top_overlap']} (n = {row['n']})"


def _add_pair(fig: go.Figure, x: np.ndarray, y: np.ndarray, texts: list[str], labels: list, row: int, col: int, first: bool) -> None:
    for tag in tag_order(labels):
        idx = np.array([i for i in range(len(x)) if labels[i] == tag], dtype=int)
        fig.add_scatter(x=x[idx], y=y[idx], mode="markers", name=tag_label(tag), legendgroup=str(tag), showlegend=first,
                        marker=dict(color=tag_color(tag), size=6, opacity=0.75),
                        customdata=[[int(i), short(texts[i], 100)] for i in idx],
                        hovertemplate="<b>sentence %{customdata[0]}</b><br>%{customdata[1]}<br>(%{x:.3g}, %{y:.3g})<extra></extra>",
                        row=row, col=col)
