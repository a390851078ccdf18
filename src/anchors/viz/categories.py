"""The category summary: mean ± SE of a metric per function tag against mean position (the paper's figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from anchors.viz.style import base_layout, metric_label, tag_color, tag_label, tag_order


def category_figure(table: pd.DataFrame, metric: str, *, title: str | None = None) -> go.Figure:
    """One point per tag from `anchors.metrics.categories.category_table` output: x = mean normalised
    position ± SE, y = mean metric ± SE (over trace means), marker area growing with the number of sentences."""
    rows = table[table["metric"] == metric]
    fig = go.Figure()
    if rows.empty:
        fig.add_annotation(text=f"no tag has enough data for {metric_label(metric)} (needs ≥ 3 sentences and ≥ 3 traces)",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    largest = float(rows["n_sentences"].max()) if not rows.empty else 1.0
    for tag in tag_order(list(rows["tag"])):
        row = rows[rows["tag"] == tag].iloc[0]
        size = 8 + 22 * np.sqrt(row["n_sentences"] / largest)  # marker area grows with the sentences behind it
        fig.add_scatter(
            x=[row["position_mean"]], y=[row["mean"]], mode="markers", name=tag_label(tag),
            error_x=dict(type="data", array=[row["position_se"]], thickness=1.2),
            error_y=dict(type="data", array=[row["se"]], thickness=1.2),
            marker=dict(size=size, color=tag_color(tag), opacity=0.85, line=dict(color="white", width=1)),
            customdata=[[row["se"], int(row["n_traces"]), int(row["n_sentences"])]],
            hovertemplate=(f"<b>{tag_label(tag)}</b><br>{metric_label(metric)}: %{{y:.4g}} ± %{{customdata[0]:.3g}} (SE)"
                           "<br>position %{x:.2f}<br>%{customdata[1]} traces, %{customdata[2]} sentences<extra></extra>"),
        )
    base_layout(fig, title or f"Sentence category effect: {metric_label(metric)}",
                xaxis_title="mean normalised position in trace", yaxis_title=f"{metric_label(metric)} (mean ± SE)",
                legend=dict(title="tag", itemsizing="constant"))
    return fig
