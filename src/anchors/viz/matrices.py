"""Matrix figures: sentence×sentence heatmaps, the receiver-head kurtosis map and a head's vertical scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float

from anchors.viz.sentences import importance_bars
from anchors.viz.style import base_layout


def color_limit(values: np.ndarray, percentile: float = 99.0) -> float:
    """Symmetric colour limit: the `percentile` of |finite values|, so one heavy-tailed cell (KL with α = 1e-9
    reaches 25 nats) does not wash out the rest. 1.0 when nothing is finite or everything is 0."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, percentile)) if finite.size else 0.0
    return limit if limit > 0 else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)


def sentence_heatmap(
    matrix: Float[np.ndarray, "sent sent"],
    *,
    title: str | None = None,
    label: str = "effect",
    source_axis: str = "source sentence (changed)",
    target_axis: str = "target sentence (affected)",
    percentile: float = 99.0,
) -> go.Figure:
    """A [source, target] matrix as a heatmap: rows = source, columns = target, diverging colours centred
    on 0, clipped at the `percentile` of |values| (the colour bar says so); NaN cells are blank."""
    z = np.asarray(matrix, dtype=float)
    if z.ndim != 2 or z.shape[0] != z.shape[1]:
        raise ValueError(f"a sentence×sentence matrix must be square, got shape {z.shape}")
    limit = color_limit(z, percentile)
    fig = go.Figure(go.Heatmap(
        z=z.astype(np.float32), zmid=0, zmin=-limit, zmax=limit, colorscale="RdBu_r", hoverongaps=False,
        colorbar=dict(title=dict(text=f"{label}<br>(clipped at ±{limit:.3g},<br>p{percentile:g} of |value|)")),
        hovertemplate=f"source %{{y}} → target %{{x}}<br>{label}: %{{z:.4g}}<extra></extra>",
    ))
    base_layout(fig, title, xaxis=dict(title=target_axis, constrain="domain"),
                yaxis=dict(title=source_axis, autorange="reversed", scaleanchor="x", constrain="domain"))
    return fig


def head_map(
    values: Float[np.ndarray, "layer head"],
    *,
    highlight: Sequence[tuple[int, int]] = (),
    title: str | None = None,
    label: str = "kurtosis",
) -> go.Figure:
    """A per-head score (e.g. the kurtosis of vertical attention scores) as a layer × head map, with the
    `highlight`ed heads (e.g. the receiver heads) outlined."""
    z = np.asarray(values, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"a per-head map must be [layer, head], got shape {z.shape}")
    fig = go.Figure(go.Heatmap(z=z, colorscale="Viridis", colorbar=dict(title=dict(text=label)),
                               hovertemplate=f"layer %{{y}}, head %{{x}}<br>{label}: %{{z:.4g}}<extra></extra>"))
    if highlight:
        layers, heads = zip(*highlight)
        fig.add_scatter(x=list(heads), y=list(layers), mode="markers", name="receiver heads",
                        marker=dict(symbol="square-open", size=11, color="#FF2D55", line=dict(width=2)),
                        hovertemplate="receiver head: layer %{y}, head %{x}<extra></extra>")
    base_layout(fig, title, xaxis_title="head", yaxis_title="layer", legend=dict(orientation="h", y=-0.15))
    return fig


def vertical_profile(
    scores: Float[np.ndarray, " sent"],
    *,
    sentences: Sequence[str] | None = None,
    tags: Sequence[str | None] | None = None,
    head: tuple[int, int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """How much later sentences attend to each sentence (a head's vertical scores, or their mean over the
    receiver heads); NaN for the last sentences, which have no later sentences far enough away."""
    label = "vertical score" if head is None else f"vertical score, L{head[0]}H{head[1]}"
    return importance_bars(scores, sentences=sentences, tags=tags, label=label, title=title)


def layer_sentence_map(
    values: Float[np.ndarray, "layer sent"],
    *,
    sentences: Sequence[str] | None = None,
    title: str | None = None,
    label: str = "KL",
) -> go.Figure:
    """A per-layer, per-sentence effect (e.g. activation patching's forced-answer KL) as a layer × sentence map:
    columns are sentences (click one to select it), rows layers; NaN (not patched) cells are blank."""
    z = np.asarray(values, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"a layer × sentence map must be [layer, sent], got shape {z.shape}")
    texts = [f"sentence {i}" for i in range(z.shape[1])] if sentences is None else [str(s)[:100] for s in sentences]
    custom = [[[i, texts[i]] for i in range(z.shape[1])] for _ in range(z.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=z.astype(np.float32), colorscale="Viridis", hoverongaps=False, customdata=custom,
        colorbar=dict(title=dict(text=label)),
        hovertemplate=f"layer %{{y}}, sentence %{{x}}<br>%{{customdata[1]}}<br>{label}: %{{z:.4g}}<extra></extra>",
    ))
    base_layout(fig, title, xaxis_title="sentence", yaxis_title="layer")
    return fig
