"""`anchors figures` and `anchors report` end to end: stable file names, the printed category table, and
results folders with missing pieces."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.metrics.categories import PAPER_METRICS, category_table
from anchors.results.trace import pooled_sentences
from anchors.results import write_results
from anchors.report.synthetic import synthetic_results

runner = CliRunner()


def _printed_tables(stdout: str) -> dict[tuple[str, str], float]:
    """(metric, tag) -> mean, parsed back from the printed category tables."""
    found, metric = {}, None
    for line in stdout.splitlines():
        title = re.match(r"Category table: (\w+),", line)
        if title:
            metric = title.group(1)
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if metric and len(cells) == 6 and re.fullmatch(r"-?\d+\.\d{4}", cells[1]):
            found[(metric, cells[0])] = float(cells[1])
    return found


def test_figures_from_the_authors_data_print_the_table_they_plot(ta_data: Path, tmp_path: Path) -> None:
    source = ta_data / "deepseek-r1-distill-qwen-14b"
    out = tmp_path / "figures"
    result = runner.invoke(app, ["figures", "--from-ta", str(source), "--out", str(out), "--format", "html"],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    group = out / "deepseek-r1-distill-qwen-14b"
    for metric in PAPER_METRICS:
        assert (group / f"categories_{metric}.html").is_file()
    assert (group / "importance_by_position.html").is_file() and (group / "category_table.csv").is_file()
    graphs = sorted(p.parent.name for p in (out / "traces").glob("*/graph.html"))
    assert len(graphs) == 10 and graphs[0] == "correct_base_solution--problem_1591"
    from anchors.report.ta import load_ta_results

    expected = category_table(pooled_sentences(load_ta_results(source, alternatives=0)))
    printed = _printed_tables(result.stdout)
    assert len(printed) == len(expected) > 20
    for row in expected.itertuples():
        assert printed[(row.metric, row.tag)] == pytest.approx(row.mean, abs=5e-5)
    saved = pd.read_csv(group / "category_table.csv")
    pd.testing.assert_frame_equal(saved, expected, check_dtype=False)


def test_figures_and_reports_from_a_results_folder(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    for k in range(3):
        write_results(synthetic_results(15, seed=k, trace_id=f"trace-{k}"), results_dir)
    (results_dir / "trace-1" / "suppression.npz").unlink()
    out = tmp_path / "figs"
    result = runner.invoke(app, ["figures", str(results_dir), "--out", str(out), "--format", "html"])
    assert result.exit_code == 0, result.output
    names = {p.stem for p in (out / "traces" / "trace-0").glob("*.html")}
    assert names == {"importance", "position", "graph", "resampling_matrix", "suppression_matrix", "receiver_heads",
                     "vertical_profile", "agreement", "early_answering"}
    assert not (out / "traces" / "trace-1" / "suppression_matrix.html").exists()
    assert "trace-1/suppression_matrix: not drawn: no suppression matrix" in result.stderr.replace("\n", "")
    assert (out / "synthetic" / "categories_counterfactual_importance_kl.html").is_file()
    report = runner.invoke(app, ["report", str(results_dir)])
    assert report.exit_code == 0, report.output
    assert all((results_dir / f"trace-{k}" / "report.html").is_file() for k in range(3))
    assert "trace-1: " in report.stdout and "note(s)" in report.stdout


def test_report_from_the_authors_data_and_bad_arguments(ta_data: Path, tmp_path: Path) -> None:
    source = ta_data / "deepseek-r1-distill-llama-8b" / "incorrect_base_solution"
    result = runner.invoke(app, ["report", "--from-ta", str(source), "--out", str(tmp_path), "--alternatives", "2"])
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("problem_*.html"))) == 5
    both = runner.invoke(app, ["report", str(tmp_path), "--from-ta", str(source)])
    assert both.exit_code == 2 and "exactly one" in both.stderr
    empty = runner.invoke(app, ["figures", str(tmp_path / "nothing-here")])
    assert empty.exit_code == 2 and "not a folder" in empty.stderr
    bad = runner.invoke(app, ["figures", "--from-ta", str(source), "--format", "gif", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown figure format" in bad.stderr
