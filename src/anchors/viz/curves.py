"""Trace-level curves: early answering (share of truncated traces giving the full trace's answer) and the hint
study's transplant curve (share of cued answers as more of the cued trace is placed into the uncued prompt)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from anchors.viz.style import base_layout
from anchors.viz import inputs
from anchors.viz.inputs import accepts_results

_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


@accepts_results(inputs.early_answering)
def early_answering_curve(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Lines of `agreement` against `fraction` (of the trace kept), one per `group` if the table has one
    (e.g. a length bucket), with a band from `agreement_lo`/`agreement_hi` when present."""
    missing = {"fraction", "agreement"} - set(table.columns)
    if missing:
        raise ValueError(f"the early-answering table needs columns {sorted(missing)}")
    groups = table.groupby("group", sort=True) if "group" in table.columns else [("all traces", table)]
    fig = go.Figure()
    for k, (name, rows) in enumerate(groups):
        rows = rows.sort_values("fraction")
        color = _PALETTE[k % len(_PALETTE)]
        if {"agreement_lo", "agreement_hi"} <= set(rows.columns):
            fig.add_scatter(x=list(rows["fraction"]) + list(rows["fraction"])[::-1],
                            y=list(rows["agreement_hi"]) + list(rows["agreement_lo"])[::-1], fill="toself",
                            line=dict(width=0), fillcolor=color, opacity=0.18, hoverinfo="skip", showlegend=False)
        fig.add_scatter(x=rows["fraction"], y=rows["agreement"], mode="lines+markers", name=str(name),
                        line=dict(color=color), hovertemplate="kept %{x:.0%} of the trace<br>same answer: %{y:.1%}<extra></extra>")
    base_layout(fig, title, xaxis=dict(title="fraction of the reasoning kept", tickformat=".0%", range=[0, 1]),
                yaxis=dict(title="share giving the full trace's answer", tickformat=".0%", range=[0, 1.02]))
    return fig


def transplant_curve(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """The hint study's transplant curve: `cued_share` (answers giving the cued option) against `fraction` (of the
    cued trace placed into the uncued prompt), with each point's number of answers in the hover box."""
    missing = {"fraction", "cued_share"} - set(table.columns)
    if missing:
        raise ValueError(f"the transplant table needs columns {sorted(missing)}")
    rows = table.sort_values("fraction")
    answered = rows["n_answered"] if "n_answered" in rows.columns else [None] * len(rows)
    fig = go.Figure()
    fig.add_scatter(x=rows["fraction"], y=rows["cued_share"], mode="lines+markers", line=dict(color=_PALETTE[1]),
                    customdata=list(answered), name="uncued prompt + cued trace",
                    hovertemplate="first %{x:.0%} of the cued trace<br>cued answer: %{y:.1%} of %{customdata} answers<extra></extra>")
    base_layout(fig, title, xaxis=dict(title="share of the cued trace placed into the uncued prompt", tickformat=".0%", range=[0, 1]),
                yaxis=dict(title="share giving the cued answer", tickformat=".0%", range=[0, 1.02]))
    return fig
