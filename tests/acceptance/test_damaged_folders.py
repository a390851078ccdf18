"""One damaged file never costs the rest of a folder: every `--from-ta` command (and report/figures on anchors' own
results) processes the intact traces, names each damaged one with its file, ends with a summary line and exits 1
(0 with --skip-invalid)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import damaged_ta
from anchors.cli import app
from damaged_ta import trace_id

runner = CliRunner()
INTACT = ["problem_330", "problem_1591_matrix"]
# Damaged in a file every command that reads traces needs: skipped by split, grade, label, score, causality, white-box.
BROKEN_TRACES = {"problem_1591": "base_solution.json: empty file", "problem_2238": "problem.json: file not found",
                 "problem_6998": "base_solution.json: field 'solution': Input should be a valid string"}


@pytest.fixture(scope="module")
def damaged(ta_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return damaged_ta.build(ta_data, tmp_path_factory.mktemp("damaged-ta"))


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def assert_named(result, skipped: dict[str, str], verb: str, read: int, left_out: dict[str, str] | None = None) -> None:
    """Each skipped trace and each damaged optional file named with its reason; the summary line; exit 1."""
    for folder, reason in {**skipped, **(left_out or {})}.items():
        assert f"{trace_id(folder)}: " in result.stderr and reason in result.stderr, (folder, result.stderr)
    assert f"{read} of {read + len(skipped)} trace(s) {verb}; {len(skipped)} skipped" in result.stderr, result.stderr
    if left_out:
        assert f"{len(left_out)} damaged optional file(s) left out" in result.stderr
    assert result.exit_code == 1


@pytest.mark.parametrize("command", ["split", "grade"])
def test_split_and_grade_skip_damaged_traces(damaged: Path, command: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run(command, "--from-ta", str(damaged), "--mode", "paper", "--out", str(out))
    assert_named(result, BROKEN_TRACES, "read", 4)
    ids = {json.loads(line)["trace_id"] for line in out.read_text().splitlines()}
    assert ids == {trace_id(f) for f in ("problem_330", "problem_2236", "problem_330_short", "problem_1591_matrix")}
    assert run(command, "--from-ta", str(damaged), "--out", str(out), "--skip-invalid").exit_code == 0


def test_label_skips_damaged_traces_and_fit_skips_damaged_labels(damaged: Path, tmp_path: Path) -> None:
    result = run("label", "--from-ta", str(damaged), "--out", str(tmp_path / "labels.jsonl"))
    assert_named(result, BROKEN_TRACES, "read", 4)
    fitted = run("label", "--fit", str(damaged), "--out", str(tmp_path / "tagger.npz"), "--text-only")
    assert fitted.exit_code == 1 and (tmp_path / "tagger.npz").is_file()
    assert f"{trace_id('problem_2236')}: " in fitted.stderr and "chunks_labeled.json: truncated" in fitted.stderr


def test_score_from_ta_scores_the_intact_traces(damaged: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores"
    result = run("score", "--from-ta", str(damaged), "--mode", "paper", "--out", str(out), "--tags", "none")
    left_out = {"problem_2236": "chunks_labeled.json: truncated",
                "problem_330_short": "10 chunks, but base_solution.json's thinking splits into 12 sentences"}
    assert_named(result, BROKEN_TRACES, "scored", 4, left_out)
    assert {p.name for p in out.iterdir() if p.is_dir()} == {trace_id(f) for f in ("problem_330", "problem_2236", "problem_330_short", "problem_1591_matrix")}


@pytest.mark.parametrize("command", ["figures", "report"])
def test_figures_and_report_draw_the_intact_traces(damaged: Path, tmp_path: Path, command: str) -> None:
    out = tmp_path / command
    extra = ["--format", "html", "--per-trace", "importance"] if command == "figures" else []
    result = run(command, "--from-ta", str(damaged), "--out", str(out), *extra)
    skipped = {"problem_2236": "chunks_labeled.json: truncated",
               "problem_330_short": "10 chunks, but base_solution.json's thinking splits into 12 sentences"}
    left_out = {"problem_1591": "base_solution.json: empty file; left out", "problem_2238": "problem.json: file not found; left out",
                "problem_6998": "field 'solution'", "problem_1591_matrix": "step_importance.json: empty file; left out"}
    assert_named(result, skipped, "drawn" if command == "figures" else "reported", 5, left_out)
    drawn = {trace_id(f) for f in ("problem_330", "problem_1591", "problem_2238", "problem_6998", "problem_1591_matrix")}
    found = {p.name for p in (out / "traces").iterdir()} if command == "figures" else {p.stem for p in out.glob("*.html")}
    assert found == drawn


def test_compat_check_compares_the_intact_traces(damaged: Path, tmp_path: Path) -> None:
    result = run("compat", "check", str(damaged), "--out", str(tmp_path), "--no-similarity")
    report = json.loads((tmp_path / "compat_report.json").read_text())
    assert result.exit_code == 1
    for folder in ("problem_1591", "problem_2236", "problem_6998", "problem_330_short"):
        assert f"{trace_id(folder)}: " in result.stderr
    assert set(report["per_trace"]) == {trace_id(f) for f in ("problem_330", "problem_2238", "problem_330_short", "problem_1591_matrix")}
    assert report["checks"]["segmentation"]["compared"] == 4 and report["checks"]["segmentation"]["within"] == 3
    assert len(report["skipped"]) == 4


def test_causality_validity_tests_the_intact_traces(damaged: Path, tmp_path: Path) -> None:
    result = run("causality", "--from-ta", str(damaged), "--tests", "validity", "--out", str(tmp_path / "c"))
    assert_named(result, BROKEN_TRACES, "read", 4)


@pytest.mark.parametrize("command", ["receivers", "suppress", "patch"])
def test_whitebox_commands_run_the_intact_traces(damaged: Path, tmp_path: Path, command: str) -> None:
    extra = ["--sentences", "0,5"] if command in ("suppress", "patch") else []
    result = run(command, "--from-ta", str(damaged), "--model", "tiny-qwen2", "--mode", "paper", "--out", str(tmp_path), *extra)
    assert_named(result, BROKEN_TRACES, "read", 4)
    written = {"receivers": "receivers.npz", "suppress": "suppression.npz", "patch": "patching.npz"}[command]
    assert (tmp_path / trace_id("problem_330") / written).is_file()


def test_report_on_results_names_a_damaged_file(tmp_path: Path) -> None:
    import pandas as pd

    from anchors.results import TraceResults, write_results

    table = pd.DataFrame({"index": [0, 1], "text": ["A.", "B."], "counterfactual_importance_kl": [0.5, 0.1]})
    for name in ("t1", "t2"):
        write_results(TraceResults(trace_id=name, sentences=table, matrices={"resampling": np.zeros((2, 2))}), tmp_path)
    (tmp_path / "t2" / "matrices.npz").write_bytes(b"PK broken")
    result = run("report", str(tmp_path))
    assert "t2: " in result.stderr and "matrices.npz: cannot read" in result.stderr
    assert (tmp_path / "t1" / "report.html").is_file() and (tmp_path / "t2" / "report.html").is_file()
    assert result.exit_code == 1 and run("report", str(tmp_path), "--skip-invalid").exit_code == 0
