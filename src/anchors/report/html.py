"""The per-trace HTML report: one self-contained file (plotly.js, data, CSS and script inlined) that works
offline. It shows the sentences with every metric and its interval, a few resampled alternatives, the
sentence graph, the matrices and whatever else the results folder holds; each missing piece is a visible note.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from anchors._version import __version__
from anchors.report.figures import STUDY_FIGURES, TRACE_FIGURES, FigureOrReason, format_value, trace_figures
from anchors.results import TraceResults, as_trace_results, read_trace_results
from anchors.results.contract import report_path
from anchors.results.kinds import PANELS
from anchors.traces.taxonomy import TAG_COLOURS
from anchors.viz.style import UNTAGGED_COLOR, metric_label, tag_label, tag_order

PLOT_TITLES = {
    "importance": "Importance per sentence",
    "position": "Importance by position",
    "graph": "Sentence graph",
    "resampling_matrix": "Resampling matrix (sentence → sentence)",
    "suppression_matrix": "Attention-suppression matrix",
    "receiver_heads": "Receiver heads",
    "vertical_profile": "Receiver-head score per sentence",
    "patching": "Activation patching (layer × sentence)",
    "agreement": "Method agreement",
    **{panel.name: panel.card for panel in PANELS},
}
_HEIGHTS = {"graph": 640, "resampling_matrix": 620, "suppression_matrix": 620, "receiver_heads": 520}
# How each plot shows sentences, for the report's script to highlight the selected one everywhere: points carry
# the sentence index as customdata[0]; matrices have sentences on both axes; the patching map has them as columns;
# tables list one sentence per row. Plots without a sentence axis (head map, curves, per-condition tables) have none.
PLOT_SENTENCE_AXIS = {"importance": "sentence-points", "position": "sentence-points", "graph": "sentence-points",
                      "vertical_profile": "sentence-points", "agreement": "sentence-points",
                      "resampling_matrix": "sentence-matrix", "suppression_matrix": "sentence-matrix",
                      "patching": "sentence-columns",
                      **{panel.name: panel.sentence_axis for panel in PANELS if panel.sentence_axis}}
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False}


def _asset(name: str) -> str:
    return resources.files("anchors.report").joinpath("assets", name).read_text(encoding="utf-8")


def render_report(results: TraceResults | Any, *, metric: str | None = None, alternatives: int = 5) -> str:
    """The report as one HTML string (≈ 5 MB of it is plotly.js); at most `alternatives` resampled sentences
    are kept per sentence, so 100 rollouts per sentence don't bloat the file. `results`: a TraceResults, or any
    one trace's result (e.g. what `score_trace` returns)."""
    results = as_trace_results(results)
    figures = trace_figures(results, metric)
    metric = metric or results.headline_metric
    cards = "\n".join(_card(name, figures[name]) for name in TRACE_FIGURES
                      if not (name in STUDY_FIGURES and isinstance(figures[name], str)))
    data = _report_data(results, metric, figures, alternatives)
    return _PAGE.format(
        title=html.escape(f"anchors report: {results.trace_id}"),
        css=_asset("report.css"),
        plotly=get_plotlyjs(),
        header=_header(results, metric),
        notes=_notes(results.notes),
        tag_options="".join(f'<option value="{html.escape(t or "")}">{html.escape(tag_label(t))}</option>'
                            for t in tag_order(results.tags()) if t),
        metric_label=html.escape(metric_label(metric) if metric else "—"),
        cards=cards,
        data=_script_json(data),
        js=_asset("report.js"),
    )


def write_report(results: TraceResults | Any, path: str | Path | None = None, *, metric: str | None = None,
                 alternatives: int = 5) -> Path:
    """Write the report; `path` defaults to the report in the results' own trace folder, else `./<trace id>.html`."""
    results = as_trace_results(results)
    if path is None:
        source = results.info.get("results_dir")
        path = report_path(source) if source else Path(f"{results.trace_id}.html")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(results, metric=metric, alternatives=alternatives), encoding="utf-8")
    return path


def write_trace_report(trace_dir: str | Path, path: str | Path | None = None) -> Path:
    """Read a trace's result folder and write its report next to the results."""
    trace_dir = Path(trace_dir)
    return write_report(read_trace_results(trace_dir), path or report_path(trace_dir))


def write_index(out: Any) -> Path:
    """OUT/index.html: one row per trace of the results folder (answer, correct, methods, top sentences, report link)."""
    from anchors.results import read_results

    rows = []
    for r in read_results(out.root, on_skip=lambda message: None):
        metric = r.headline_metric
        top = r.top(3, metric) if metric else None
        best = "" if top is None else "<br>".join(
            f"{int(row['index'])}: {html.escape(_short(str(row['text'])))} ({format_value(row[metric])})" for _, row in top.iterrows())
        link = f'<a href="{html.escape(report_path(r.trace_id).as_posix())}">{html.escape(r.trace_id)}</a>'
        rows.append(f"<tr><td>{link}</td><td>{html.escape(str(r.info.get('answer')))}</td>"
                    f"<td>{html.escape(str(r.info.get('is_correct', '')))}</td><td>{r.n_sentences}</td>"
                    f"<td>{html.escape(', '.join(r.methods))}</td><td>{html.escape(metric_label(metric) if metric else '')}</td>"
                    f"<td>{best}</td></tr>")
    page = _INDEX.format(css=_asset("report.css"), rows="\n".join(rows), count=len(rows), version=__version__)
    path = out.index_path()
    path.write_text(page, encoding="utf-8")
    return path


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="anchors {version}">
<title>anchors results ({count} traces)</title><style>{css}
table.index {{ border-collapse: collapse; width: 100%; }} table.index td, table.index th {{ border-bottom: 1px solid #ddd;
padding: 6px 8px; vertical-align: top; text-align: left; }}</style></head>
<body><header><h1>anchors results: {count} trace(s)</h1></header>
<table class="index"><thead><tr><th>trace</th><th>answer</th><th>correct</th><th>sentences</th><th>methods</th>
<th>ranked by</th><th>top sentences</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


def _card(name: str, figure: FigureOrReason) -> str:
    title = html.escape(PLOT_TITLES[name])
    if not isinstance(figure, str) and figure.layout.title.text:
        # The card's heading carries the figure's title; drawn twice it would only take space.
        title = html.escape(figure.layout.title.text)
        figure = go.Figure(figure).update_layout(title=None, margin_t=20)
    if isinstance(figure, str):
        return (f'<figure class="plot-card" data-plot="{name}" data-missing="1"><h2>{title}</h2>'
                f'<p class="missing note">Not shown: {html.escape(figure)}.</p></figure>')
    height = figure.layout.height or _HEIGHTS.get(name, 460)
    # Drawn by report.js when the card scrolls into view: a 300-sentence report then opens at once instead of
    # drawing nine plots (≈ 5 s here) before the page responds.
    spec = _escape_json(figure.to_json(validate=False))
    return (f'<figure class="plot-card" data-plot="{name}"><h2>{title}</h2>'
            f'<div class="plot" id="plot-{name}" data-spec="spec-{name}" style="height:{height}px"></div>'
            f'<script type="application/json" id="spec-{name}">{spec}</script></figure>')


def _header(r: TraceResults, metric: str | None) -> str:
    info = r.info
    facts = [("model", info.get("model")), ("answer", info.get("answer")), ("gold", info.get("gold_answer")),
             ("correct", info.get("is_correct")), ("sentences", r.n_sentences),
             ("ranked by", metric_label(metric) if metric else None)]
    spans = "".join(f"<span>{html.escape(k)}: <b>{html.escape(str(v))}</b></span>" for k, v in facts if v is not None)
    problem = info.get("problem")
    details = (f"<details><summary>Problem</summary><pre>{html.escape(str(problem))}</pre></details>" if problem else "")
    run = info.get("run")
    if isinstance(run, dict) and run:
        settings = html.escape(json.dumps(run, indent=1, default=str))
        details += f"<details><summary>Run settings</summary><pre>{settings}</pre></details>"
    return f"<h1>{html.escape(r.trace_id)}</h1><div class=\"facts\">{spans}</div>{details}"


def _notes(notes: tuple[str, ...]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<section class="notes" id="notes"><h2>Notes on this trace\'s results</h2><ul>{items}</ul></section>'


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf → null, numpy scalars → Python."""
    if isinstance(value, float) or hasattr(value, "dtype"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return number if math.isfinite(number) else None
    return value


def _report_data(r: TraceResults, metric: str | None, figures: dict[str, FigureOrReason], keep: int) -> dict[str, Any]:
    metrics = r.metrics
    bounds = {m: r.interval(m) for m in metrics}
    sentences = []
    tags_of = r.tags()
    for i, record in enumerate(r.sentences.to_dict("records")):
        values = {}
        for m in metrics:
            lo_hi = bounds[m]
            values[m] = [_clean(record[m]), *((_clean(lo_hi[0][i]), _clean(lo_hi[1][i])) if lo_hi else (None, None))]
        sentences.append({"index": int(record["index"]), "text": str(record["text"]), "tag": tags_of[i],
                          "tags": _tags(record.get("tags"), tags_of[i]),
                          "depends_on": _list(record.get("depends_on")), "metrics": values})
    return {
        "trace_id": r.trace_id, "headline": metric, "headline_label": metric_label(metric) if metric else "",
        "metrics": metrics, "labels": {m: metric_label(m) for m in metrics}, "sentences": sentences,
        "position": {s["index"]: k for k, s in enumerate(sentences)},
        "alternatives": {str(k): list(v)[:keep] for k, v in r.alternatives.items() if keep > 0},
        "tag_colors": TAG_COLOURS, "untagged_color": UNTAGGED_COLOR,
        "kind_of": {f"plot-{n}": kind for n, kind in PLOT_SENTENCE_AXIS.items() if isinstance(figures.get(n), go.Figure)},
        "table_rows": {f"plot-{n}": [int(i) for i in r.tables[n]["sentence_index"]] for n, kind in PLOT_SENTENCE_AXIS.items()
                       if kind == "sentence-table" and isinstance(figures.get(n), go.Figure) and "sentence_index" in r.tables[n]},
        "plot_config": PLOT_CONFIG,
        "anchors_version": __version__,
    }


def _tags(value: Any, first: str | None) -> list[str]:
    if isinstance(value, str):
        value = value.split(";")
    tags = [str(t).strip() for t in value if str(t).strip()] if isinstance(value, (list, tuple)) else []
    return tags or ([first] if first else [])


def _list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []


def _script_json(data: dict[str, Any]) -> str:
    return _escape_json(json.dumps(data, ensure_ascii=False, default=_clean, allow_nan=False))


def _escape_json(text: str) -> str:
    """JSON placed inside <script type="application/json">: every `<` as \\u003c (still the same JSON), so no
    sentence text (model output) can close the script element or open another."""
    return text.replace("<", "\\u003c")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="anchors">
<title>{title}</title>
<style>{css}</style>
<script>{plotly}</script>
</head>
<body>
<header>{header}</header>
{notes}
<main class="layout">
<aside id="sentence-panel">
<div class="controls">
<select id="sort" aria-label="order"><option value="index">trace order</option><option value="metric">by {metric_label}</option></select>
<select id="tag-filter" aria-label="tag"><option value="">all tags</option>{tag_options}</select>
<input id="search" type="search" placeholder="search sentences" aria-label="search">
</div>
<ol id="sentence-list"></ol>
</aside>
<div class="right">
<section id="detail" aria-live="polite"></section>
{cards}
</div>
</main>
<script id="anchors-data" type="application/json">{data}</script>
<script>{js}</script>
</body>
</html>
"""
