"""The HTML report as a file: self-contained, bounded in size, safe with hostile sentence text, and still
written (with notes) for incomplete results. The browser test (tests/acceptance) checks that it renders."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from anchors.report.html import render_report, write_report, write_trace_report
from anchors.results import TraceResults, write_results
from anchors.report.synthetic import synthetic_results


def _data(page: str) -> dict:
    raw = re.search(r'<script id="anchors-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    return json.loads(raw)


def test_report_is_self_contained_and_offline() -> None:
    page = render_report(synthetic_results(20))
    assert re.search(r'<(script|link|img|iframe)[^>]+(src|href)=', page) is None  # nothing loaded from anywhere
    assert page.count('<script type="application/json" id="spec-') == 9  # all nine plots have data
    assert "Plotly.newPlot" in page  # plotly.js itself is inlined


def test_report_data_carries_every_metric_with_its_interval_and_a_few_alternatives() -> None:
    results = synthetic_results(10, n_rollouts=50)
    data = _data(render_report(results, alternatives=4))
    first = data["sentences"][0]
    row = results.sentences.iloc[0]
    assert first["metrics"]["counterfactual_importance_kl"] == [
        row["counterfactual_importance_kl"], row["counterfactual_importance_kl_lo"], row["counterfactual_importance_kl_hi"]]
    assert first["metrics"]["accuracy"][1:] == [None, None]  # no CI columns for accuracy
    assert len(data["alternatives"]["0"]) == 4 and data["headline"] == "counterfactual_importance_kl"


def test_nan_scores_become_null_and_are_noted() -> None:
    results = synthetic_results(6, with_ci=False)
    table = results.sentences.copy()
    table.loc[2, "counterfactual_importance_kl"] = np.nan
    results = replace(results, sentences=table, notes=("counterfactual_importance_kl: NaN for 1 of 6 sentence(s)",))
    page = render_report(results)
    assert _data(page)["sentences"][2]["metrics"]["counterfactual_importance_kl"][0] is None
    assert "NaN for 1 of 6 sentence(s)" in page and 'id="notes"' in page


def test_sentence_text_cannot_break_out_of_the_page() -> None:
    results = synthetic_results(3)
    table = results.sentences.copy()
    table.loc[0, "text"] = "</script><script>window.pwned = 1</script><img src=x onerror=alert(1)>"
    page = render_report(replace(results, sentences=table, trace_id="x</title><script>"))
    assert "<script>window.pwned" not in page and "<img src=x" not in page
    assert "x&lt;/title&gt;&lt;script&gt;" in page
    assert _data(page)["sentences"][0]["text"].startswith("</script>")  # the text itself survives intact


def test_incomplete_results_render_with_visible_notes(tmp_path: Path) -> None:
    table = pd.DataFrame({"index": [0], "text": ["The only sentence."], "counterfactual_importance_kl": [np.nan]})
    folder = write_results(TraceResults(trace_id="t", sentences=table), tmp_path)
    path = write_trace_report(folder)
    page = path.read_text()
    assert path == folder / "report.html"
    assert "single sentence" in page and "run anchors score --out" in page and "run anchors receivers --out" in page
    assert page.count('data-missing="1"') >= 10  # matrices, receivers, patching, agreement, every causality test


def test_a_damaged_file_still_gives_a_report_naming_it(tmp_path: Path) -> None:
    folder = write_results(synthetic_results(4, trace_id="t"), tmp_path)
    (folder / "matrices.npz").write_bytes(b"not a zip")
    page = write_trace_report(folder).read_text()
    assert "matrices.npz: cannot read" in page


def test_a_300_sentence_100_rollout_trace_stays_under_15_mb(tmp_path: Path) -> None:
    results = synthetic_results(300, n_rollouts=100, n_layers=48, n_heads=40)
    folder = write_results(results, tmp_path)
    path = write_trace_report(folder)
    size = path.stat().st_size
    assert size < 15 * 2**20, f"{size / 2**20:.1f} MiB"
    assert len(_data(path.read_text())["sentences"]) == 300


def test_default_report_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    results = synthetic_results(3)
    assert write_report(results) == Path("synthetic.html")
    assert isinstance(results, TraceResults)
