"""`--dry-run` on resample and score: what the run still needs, a measured rate, and nothing written. Tiny Qwen2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app

runner = CliRunner()
TRACE = {"id": "a-1", "problem": "What is 1 + 1?", "gold_answer": "2", "thinking": "One and one. That is two.",
         "answer_text": "\\boxed{2}"}
MODEL = ["--model", "tiny-qwen2", "--device", "cpu"]


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.stdout


def row(output: str, label: str) -> list[str]:
    line = next(line for line in output.splitlines() if label in line)
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_resample_dry_run_counts_what_the_store_lacks_and_writes_nothing(tmp_path: Path) -> None:
    traces, store = tmp_path / "t.jsonl", tmp_path / "r.sqlite"
    traces.write_text(json.dumps(TRACE) + "\n")
    common = ["resample", str(traces), *MODEL, "--max-new-tokens", "5", "--store", str(store)]
    before = invoke(*common, "--rollouts", "4", "--dry-run")
    assert not store.exists()
    # 2 sentences → 3 prefixes (the last holds the whole thinking), 4 rollouts each
    assert row(before, "resampled")[1:5] == ["3", "12", "0", "12"] and row(before, "resampled")[6] == "60"
    assert "measured:" in before and "estimated time:" in before
    invoke(*common, "--rollouts", "2")
    after = invoke(*common, "--rollouts", "4", "--dry-run")
    assert row(after, "resampled")[1:5] == ["3", "12", "6", "6"] and row(after, "resampled")[6] == "30"


def test_score_dry_run_lists_continuations_and_forced_answers(tmp_path: Path) -> None:
    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps(TRACE) + "\n")
    out = invoke("score", str(traces), *MODEL, "--rollouts", "3", "--max-new-tokens", "5", "--tags", "none",
                 "--out", str(tmp_path / "R"), "--dry-run")
    assert row(out, "resampled")[1:5] == ["3", "9", "0", "9"] and row(out, "forced")[1:5] == ["3", "9", "0", "9"]
    assert "at most 9" in out and not (tmp_path / "R" / "rollouts.sqlite").exists()
