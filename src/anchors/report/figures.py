"""Which figures a trace (or a set of traces) gets, with stable names, built from TraceResults alone.

Each builder returns a figure, or a sentence saying why there is none (shown in the report as a note, printed
by `anchors figures`), so missing data never stops the rest.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from anchors.metrics.categories import PAPER_METRICS, category_table
from anchors.results.trace import TraceResults, pooled_sentences
from anchors.viz import (
    category_figure, early_answering_curve, head_map, importance_bars, importance_by_position, method_agreement,
    sentence_graph, sentence_heatmap, vertical_profile,
)
from anchors.viz.sentences import normalised_positions
from anchors.viz.style import metric_label

FigureOrReason = go.Figure | str
# Per-trace figures, in report order; the keys are the stable file names.
TRACE_FIGURES = ("importance", "position", "graph", "resampling_matrix", "suppression_matrix", "receiver_heads",
                 "vertical_profile", "agreement", "early_answering")
# Scores compared in the agreement view, when present (suppression_score / receiver_score may be derived).
AGREEMENT_METRICS = ("counterfactual_importance_kl", "resampling_importance_kl", "forced_importance_kl",
                     "receiver_score", "suppression_score")


def trace_figures(results: TraceResults, metric: str | None = None) -> dict[str, FigureOrReason]:
    """Every per-trace figure of TRACE_FIGURES for one trace (a reason string where the data is missing)."""
    metric = metric or results.headline_metric
    builders = {
        "importance": lambda: _importance(results, metric),
        "position": lambda: _position(results, metric),
        "graph": lambda: _graph(results, metric),
        "resampling_matrix": lambda: _matrix(results, "resampling", "resampling effect M[i, j]"),
        "suppression_matrix": lambda: _matrix(results, "suppression", "suppression effect (log-KL, row-centred)"),
        "receiver_heads": lambda: _receiver_heads(results),
        "vertical_profile": lambda: _vertical_profile(results),
        "agreement": lambda: _agreement(results),
        "early_answering": lambda: _early_answering(results),
    }
    return {name: builders[name]() for name in TRACE_FIGURES}


def _importance(r: TraceResults, metric: str | None) -> FigureOrReason:
    if metric is None or metric not in r.sentences.columns:
        return _no_metric(r, metric)
    bounds = r.interval(metric)
    lo, hi = bounds if bounds else (None, None)
    ci = "" if bounds else " (no CI columns)"
    return importance_bars(r.sentences[metric].to_numpy(float), sentences=r.texts(), tags=r.tags(), lower=lo, upper=hi,
                           label=metric_label(metric), details=hover_details(r),
                           title=f"{metric_label(metric)} per sentence{ci}")


def _no_metric(r: TraceResults, metric: str | None) -> str:
    if not r.n_sentences:
        return "no sentences"
    have = ", ".join(r.metrics) or "none"
    return f"no metric column {metric!r} in the scores table (metrics found: {have})" if metric else "no metric columns"


def _position(r: TraceResults, metric: str | None) -> FigureOrReason:
    if metric is None or metric not in r.sentences.columns:
        return _no_metric(r, metric)
    return importance_by_position(r.sentences[metric].to_numpy(float), sentences=r.texts(), tags=r.tags(),
                                  label=metric_label(metric), title=f"{metric_label(metric)} by position in the trace")


def _graph(r: TraceResults, metric: str | None) -> FigureOrReason:
    name = "resampling" if "resampling" in r.matrices else "suppression" if "suppression" in r.matrices else None
    if name is None:
        return "no sentence×sentence matrix (matrix.npz or suppression.npz) to draw links from"
    sizes = r.sentences[metric].to_numpy(float) if metric in r.sentences.columns else None
    return sentence_graph(r.matrices[name], sizes, sentences=r.texts(), tags=r.tags(),
                          label=metric_label(metric) if metric else "importance",
                          title=f"Sentence graph: nodes sized by {metric_label(metric) if metric else '—'}, links from the {name} matrix")


def _matrix(r: TraceResults, name: str, label: str) -> FigureOrReason:
    if name not in r.matrices:
        return next((n for n in r.notes if f"{name} matrix" in n), f"no {name} matrix")
    return sentence_heatmap(r.matrices[name], label=label, title=f"{name.capitalize()} matrix (row = source, column = target)")


def _receiver_heads(r: TraceResults) -> FigureOrReason:
    if r.head_scores is None:
        return "no receiver-head results (receivers.npz)"
    return head_map(r.head_scores, highlight=r.receiver_heads, title="Receiver heads: kurtosis of vertical attention scores")


def receiver_scores(r: TraceResults) -> np.ndarray | None:
    """Per-sentence receiver score: the `receiver_score` column, else the mean vertical score over the
    receiver heads (methods.md §6)."""
    if "receiver_score" in r.sentences.columns:
        return r.sentences["receiver_score"].to_numpy(float)
    if r.vertical_scores is None or not r.receiver_heads:
        return None
    stacked = np.stack([r.vertical_scores[layer, head] for layer, head in r.receiver_heads])
    with warnings.catch_warnings():  # the last sentences are NaN for every head: their mean is NaN, as it should be
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.where(np.isfinite(stacked), stacked, np.nan), axis=0)


def _vertical_profile(r: TraceResults) -> FigureOrReason:
    scores = receiver_scores(r)
    if scores is None:
        return "no receiver scores (receiver_score column, or vertical_scores + receiver_heads in receivers.npz)"
    return vertical_profile(scores, sentences=r.texts(), tags=r.tags(),
                            title="Receiver-head score per sentence (mean vertical score over the receiver heads)")


def suppression_scores(r: TraceResults) -> np.ndarray | None:
    """Per-sentence summary of the suppression matrix: mean effect on later sentences (row mean, NaN ignored)."""
    if "suppression_score" in r.sentences.columns:
        return r.sentences["suppression_score"].to_numpy(float)
    matrix = r.matrices.get("suppression")
    if matrix is None:
        return None
    finite = np.where(np.isfinite(matrix), matrix, np.nan)
    return np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in finite])


def _agreement(r: TraceResults) -> FigureOrReason:
    scores = {m: r.sentences[m].to_numpy(float) for m in AGREEMENT_METRICS if m in r.sentences.columns}
    for name, derived in (("receiver_score", receiver_scores(r)), ("suppression_score", suppression_scores(r))):
        if name not in scores and derived is not None:
            scores[name] = derived
    if len(scores) < 2 or r.n_sentences < 3:
        return (f"method agreement needs ≥ 2 of {', '.join(AGREEMENT_METRICS)} and ≥ 3 sentences "
                f"(found {len(scores)}, {r.n_sentences})")
    return method_agreement(scores, sentences=r.texts(), tags=r.tags(), title="Do the methods agree? (Spearman ρ per pair)")


def _early_answering(r: TraceResults) -> FigureOrReason:
    if r.early_answering is None:
        return "no early-answering results (early_answering.csv)"
    return early_answering_curve(r.early_answering, title="Early answering: does truncating the trace change the answer?")


def hover_details(r: TraceResults, limit: int = 12) -> list[str]:
    """Per sentence, every metric with its interval, as hover-box lines."""
    metrics = r.metrics[:limit]
    lines = []
    for i in range(r.n_sentences):
        parts = [f"{metric_label(m)}: {format_value(r.sentences[m].iloc[i], _bounds(r, m, i))}" for m in metrics]
        lines.append("".join(f"<br>{p}" for p in parts))
    return lines


def _bounds(r: TraceResults, metric: str, i: int) -> tuple[float, float] | None:
    bounds = r.interval(metric)
    return None if bounds is None else (float(bounds[0][i]), float(bounds[1][i]))


def format_value(value: object, bounds: tuple[float, float] | None = None) -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(v):
        return "NaN"
    if bounds and all(np.isfinite(bounds)):
        return f"{v:.4g} [{bounds[0]:.4g}, {bounds[1]:.4g}]"
    return f"{v:.4g}"


def pooled_figures(
    results: Sequence[TraceResults], metrics: Sequence[str] = PAPER_METRICS
) -> tuple[dict[str, FigureOrReason], pd.DataFrame]:
    """Figures over several traces: `categories_<metric>` (the paper's category figure, methods.md §4) for each
    metric present, and `importance_by_position` of the headline metric; plus the category table they plot."""
    pooled = pooled_sentences(results)
    present = [m for m in metrics if m in pooled.columns]
    figures: dict[str, FigureOrReason] = {}
    table = category_table(pooled, present) if present and "tag" in pooled.columns else pd.DataFrame()
    for metric in present:
        figures[f"categories_{metric}"] = category_figure(table, metric)
    headline = next((r.headline_metric for r in results if r.headline_metric), None)
    if headline and headline in pooled.columns:
        positions = np.concatenate([normalised_positions(r.n_sentences) for r in results])
        figures["importance_by_position"] = importance_by_position(
            pooled[headline].to_numpy(float), positions, sentences=[str(t) for t in pooled["text"]],
            tags=[None if pd.isna(t) else str(t) for t in pooled["tag"]], groups=list(pooled["trace_id"]),
            label=metric_label(headline), title=f"{metric_label(headline)} by position ({len(results)} traces)")
    else:
        figures["importance_by_position"] = "no metric to plot"
    return figures, table

