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
from anchors.results.kinds import COMMANDS, IMPORTANCES, PANELS, STUDY_PANELS
from anchors.results.trace import TraceResults, pooled_sentences
from anchors.viz import (
    category_figure, early_answering_curve, head_map, importance_bars, importance_by_position, layer_sentence_map,
    method_agreement, results_table, sentence_graph, sentence_heatmap, transplant_curve, vertical_profile,
)
from anchors.viz.sentences import normalised_positions
from anchors.viz.style import metric_label

FigureOrReason = go.Figure | str
# Per-trace figures, in report order; the keys are the stable file names. The report's own come first, then each
# result kind's panels (anchors.results.kinds).
_OWN_FIGURES = ("importance", "position", "graph", "resampling_matrix", "suppression_matrix", "receiver_heads",
                "vertical_profile", "patching", "agreement")
TRACE_FIGURES = (*_OWN_FIGURES, *(panel.name for panel in PANELS))
# The studies are asked for (causality --tests hint/insertions, receivers --ablate), not part of every analysis: a
# report shows their panels only when they ran, instead of four "not shown" cards on every trace.
STUDY_FIGURES = STUDY_PANELS
# The panels that show a kind's rows as a table: name -> (columns shown, title)
TEST_TABLES = {panel.name: (panel.columns, panel.title) for panel in PANELS if panel.columns}


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
        "patching": lambda: _patching(results),
        "agreement": lambda: _agreement(results),
        "early_answering": lambda: _early_answering(results),
        **{name: (lambda name=name: _test_table(results, name)) for name in TEST_TABLES},
        "hint": lambda: _hint(results),
        "hint_transplant": lambda: _hint_transplant(results),
    }
    return {name: builders[name]() for name in TRACE_FIGURES}


def _missing(kind: str, what: str) -> str:
    """Why a panel is empty, with the command that fills it."""
    return f"no {what} in this results folder (run {COMMANDS[kind]} --out on it)"


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
        return _missing("blackbox", "sentence×sentence matrix to draw links from")
    sizes = r.sentences[metric].to_numpy(float) if metric in r.sentences.columns else None
    return sentence_graph(r.matrices[name], sizes, sentences=r.texts(), tags=r.tags(),
                          label=metric_label(metric) if metric else "importance",
                          title=f"Sentence graph: nodes sized by {metric_label(metric) if metric else '—'}, links from the {name} matrix")


def _matrix(r: TraceResults, name: str, label: str) -> FigureOrReason:
    if name not in r.matrices:
        return _missing("blackbox" if name == "resampling" else "suppression", f"{name} matrix")
    return sentence_heatmap(r.matrices[name], label=label, title=f"{name.capitalize()} matrix (row = source, column = target)")


def _receiver_heads(r: TraceResults) -> FigureOrReason:
    if r.head_scores is None:
        return _missing("receivers", "receiver-head results")
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
        return _missing("receivers", "receiver scores")
    return vertical_profile(scores, sentences=r.texts(), tags=r.tags(),
                            title="Receiver-head score per sentence (mean vertical score over the receiver heads)")


def _patching(r: TraceResults) -> FigureOrReason:
    if r.patching is None:
        return _missing("patching", "activation-patching results")
    kl, sites = np.asarray(r.patching["kl"], dtype=float), list(r.patching.get("sites") or ["resid"])
    return layer_sentence_map(kl[0], sentences=r.texts(), label="KL",
                              title=f"Activation patching ({sites[0]}): forced-answer KL when sentence i's activations at "
                                    "layer l come from its counterfactual")


def _agreement(r: TraceResults) -> FigureOrReason:
    scores = r.importances()
    if "receiver_score" not in scores and (derived := receiver_scores(r)) is not None:
        scores["receiver_score"] = derived
    if len(scores) < 2 or r.n_sentences < 3:
        return (f"method agreement needs ≥ 2 of {', '.join(IMPORTANCES)} and ≥ 3 sentences (found "
                f"{', '.join(scores) or 'none'}, {r.n_sentences} sentences): run more methods into this folder "
                "(anchors analyze --methods all)")
    return method_agreement(scores, sentences=r.texts(), tags=r.tags(),
                            title="Do the methods agree? Spearman ρ [95% bootstrap interval] per pair")


def _early_answering(r: TraceResults) -> FigureOrReason:
    if r.early_answering is None:
        return _missing("early_answering", "early-answering results")
    summary = r.summaries.get("early_answering") or {}
    aoc = summary.get("aoc")
    suffix = f" (AOC = {aoc:.3f})" if isinstance(aoc, (int, float)) and np.isfinite(aoc) else ""
    return early_answering_curve(r.early_answering, title=f"Early answering: does truncating the trace change the answer?{suffix}")


def _test_table(r: TraceResults, kind: str) -> FigureOrReason:
    table = r.tables.get(kind)
    if table is None:
        return _missing(kind, f"{kind} results")
    columns, title = TEST_TABLES[kind]
    if kind == "validity":
        summary = r.summaries.get("validity") or {}
        title += f": trace {summary.get('validity', '?')}, answer correct: {summary.get('correct', '?')}"
    return results_table(table, columns, title=title)


def _hint(r: TraceResults) -> FigureOrReason:
    table = r.tables.get("hint")
    if table is None:
        return _missing("hint", "hint-study results (they are in the cued traces' folders, <trace id>.cued)")
    values = np.full(r.n_sentences, np.nan)
    details = [""] * r.n_sentences
    for row in table.itertuples():
        i = int(row.sentence_index)
        if 0 <= i < r.n_sentences:
            values[i] = row.importance
            mention = "string" if row.mentions_cue_string else "embedding" if row.mentions_cue_embedding else "no"
            details[i] = (f"<br>cued answer in R_i: {format_value(row.cued_share)} ({int(row.n_answered)} answers)"
                          f"<br>mentions the cue: {mention} (cosine {format_value(row.cue_cosine)})")
    summary = r.summaries.get("hint") or {}
    verdict = ("unfaithful: follows the cue, never mentions it" if summary.get("unfaithful") else
               "follows the cue" + (", mentions it" if summary.get("mentions_cue") else "") if summary.get("follows_cue")
               else "does not follow the cue")
    return importance_bars(values, sentences=r.texts(), tags=r.tags(), label="importance for the cued answer",
                           details=details, title=f"Cued trace: keeping sentence i moves the answer towards the cue "
                           f"({summary.get('cue_answer', '?')}); cue effect {format_value(summary.get('cue_effect'))}; {verdict}")


def _hint_transplant(r: TraceResults) -> FigureOrReason:
    table = r.tables.get("hint_transplant")
    if table is None:
        return _missing("hint", "transplant curve (in the cued traces' folders, <trace id>.cued)")
    return transplant_curve(table, title="Transplant: the cued trace's first sentences in the uncued prompt")


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
        has_rows = not table.empty and (table["metric"] == metric).any()
        figures[f"categories_{metric}"] = category_figure(table, metric) if has_rows else (
            f"too little data for {metric}: no tag has ≥ 3 sentences in ≥ 3 traces")  # a note, not an empty figure
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

