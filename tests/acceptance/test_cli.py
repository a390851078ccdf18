"""End-to-end CLI runs: help, bad input handling, splitting and grading real data, generation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.traces.jsonl import read_traces
from anchors.thought_anchors import load_thought_anchors

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def good(trace_id: str, **extra: object) -> str:
    record = {"id": trace_id, "problem": "What is 2+2?", "thinking": "Two plus two is four. So 4.",
              "answer_text": "\\boxed{4}", "gold_answer": "4", **extra}
    return json.dumps(record) + "\n"


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.jsonl"
    path.write_text(good("a") + "{broken\n" + good("b", thinking="") + good("c"), encoding="utf-8")
    return path


def test_help_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "anchors", "--help"], capture_output=True, text=True, check=True)
    for command in ("models", "generate", "split", "grade"):
        assert command in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("anchors ")


def test_split_reports_bad_lines_and_processes_good_ones(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "sentences.jsonl"
    result = runner.invoke(app, ["split", str(mixed), "--out", str(out)])
    assert result.exit_code == 1
    assert f"{mixed}:2: invalid JSON" in result.stderr
    assert f"{mixed}:3: field 'thinking': " in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted({r["trace_id"] for r in rows}) == ["a", "c"]
    assert rows[0]["text"] == "Two plus two is four." and rows[0]["start"] == 0


def test_skip_invalid_exits_zero(mixed: Path) -> None:
    result = runner.invoke(app, ["split", str(mixed), "--skip-invalid"])
    assert result.exit_code == 0
    assert "2 invalid line(s) skipped" in result.stderr


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grade", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_split_and_grade_the_authors_traces(ta_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "chunks.jsonl"
    result = runner.invoke(app, ["split", "--from-ta", str(ta_data), "--mode", "paper", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["trace_id"] for r in rows}) == 20
    grades = tmp_path / "grades.jsonl"
    result = runner.invoke(app, ["grade", "--from-ta", str(ta_data), "--mode", "paper", "--out", str(grades)])
    assert result.exit_code == 0, result.stderr
    graded = {row["trace_id"]: row["correct"] for row in map(json.loads, grades.read_text().splitlines())}
    expected = {t.id: t.metadata["is_correct"] for t in load_thought_anchors(ta_data)}
    assert graded == expected


def test_generate_on_a_tiny_model_resumes(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    args = ["generate", "--model", "tiny-qwen2", "--device", "cpu", "--problems", str(EXAMPLES / "problems.jsonl"),
            "--limit", "2", "--max-new-tokens", "24", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    traces = list(read_traces(out))
    assert [t.id for t in traces] == ["arith-01", "arith-02"]
    assert all(t.model == "tiny-qwen2" and t.gold_answer for t in traces)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert len(list(read_traces(out))) == 2


def test_generate_needs_exactly_one_problem_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--model", "tiny-qwen2", "--out", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 2 and "exactly one of --problem" in result.stderr


@pytest.mark.slow
def test_generate_with_the_bundled_model(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    # A short budget: this checks the real-model path, not the model's reasoning.
    result = runner.invoke(app, ["generate", "--model", "smollm2-135m", "--device", "cpu", "--max-new-tokens", "48",
                                 "--problem", "A box holds 6 eggs. How many eggs are in 7 boxes?", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    (trace,) = list(read_traces(out))
    assert trace.model == "smollm2-135m" and trace.thinking.strip() and trace.answer_text.strip()
    assert trace.prompt.startswith("<|im_start|>") and trace.prompt.endswith("<think>\n")
