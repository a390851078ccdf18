"""`anchors receivers / suppress / patch` end to end on a tiny random model: result files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.results import ResultsDir
from anchors.results.contract import read_npz

runner = CliRunner()
MODEL = ["--model", "tiny-qwen2", "--device", "cpu"]


def record(trace_id: str, n: int = 7, **extra: object) -> str:
    thinking = " ".join(f"Step {i}: {i} plus {i} is {2 * i}." for i in range(n)) + "\n"
    return json.dumps({"id": trace_id, "problem": "What is 3 + 3?", "thinking": thinking,
                       "answer_text": "\n\nThe answer is \\boxed{6}.", **extra}) + "\n"


@pytest.fixture()
def traces(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text(record("a") + record("b", 9), encoding="utf-8")
    return path


def test_receivers_writes_run_and_trace_files(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = runner.invoke(app, ["receivers", str(traces), *MODEL, "--out", str(out), "--top-k", "3"])
    assert result.exit_code == 0, result.output
    results = ResultsDir(out)
    run = results.run_manifest().methods["receiver_heads"]
    assert run.meta["trace_ids"] == ["a", "b"] and len(run.meta["receiver_heads"]) == 3 and run.summary["reliability"] is not None
    assert read_npz(out / "receiver_heads.npz")["kurtosis"].shape == (2, run.meta["n_layers"], run.meta["n_heads"])
    entry = results.trace_manifest("b").methods["receivers"]
    arrays = read_npz(out / "b" / "receivers.npz")
    n = len(results.trace_manifest("b").sentences)
    assert n == 9 and len(entry.meta["token_spans"]) == n and entry.meta["receiver_heads"] == run.meta["receiver_heads"]
    assert arrays["vertical"].shape == (2, 4, n) and arrays["receiver_attention"].shape == (3, n, n)
    assert arrays["receiver_scores"].shape == (n,) and (out / "b" / "report.html").is_file()
    assert results.trace_dirs() == [out / "a", out / "b"]  # the run-level files do not make the root a trace


def test_suppress_and_patch_write_their_files(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = runner.invoke(app, ["suppress", str(traces), *MODEL, "--out", str(out), "--sentences", "0-2,5"])
    assert result.exit_code == 0, result.output
    entry = ResultsDir(out).trace_manifest("a").methods["suppression"]
    arrays = read_npz(out / "a" / "suppression.npz")
    assert entry.settings["sources"] == [0, 1, 2, 5] and arrays["raw"].shape == (7, 7)
    # [source, target]: the rows of suppressed sentences are computed, the others are NaN
    assert not np.isnan(arrays["raw"][[0, 1, 2, 5]]).any() and np.isnan(arrays["raw"][3]).all()
    replacements = tmp_path / "replacements.jsonl"
    replacements.write_text(json.dumps({"trace_id": "a", "sentence": 2, "text": "Step 2: 2 plus 2 is 5."}) + "\n")
    result = runner.invoke(app, ["patch", str(traces), *MODEL, "--out", str(out), "--replacements", str(replacements),
                                 "--sites", "resid,mlp"])
    assert result.exit_code == 1  # trace b has no replacement: reported, a is still written
    assert "trace 'b': no replacement text" in result.stderr
    entry = ResultsDir(out).trace_manifest("a").methods["patching"]
    arrays = read_npz(out / "a" / "patching.npz")
    assert entry.meta["sites"] == ["resid", "mlp"] and entry.meta["answer"] == "6" and entry.meta["replacements"][2].endswith("is 5.")
    assert arrays["kl"].shape == (2, 2, 7) and arrays["patched_tokens"][2] > 0
    assert "patching" not in ResultsDir(out).trace_manifest("b").methods
    assert list(ResultsDir(out).trace_manifest("a").methods) == ["suppression", "patching"]


def test_bad_input_is_reported_by_trace_and_the_rest_still_runs(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_text(record("ok") + record("huge", 400) + "{broken\n", encoding="utf-8")
    out = tmp_path / "results"
    result = runner.invoke(app, ["suppress", str(path), *MODEL, "--out", str(out), "--sentences", "0"])
    assert result.exit_code == 1
    assert "trace 'huge': the whole trace is" in result.stderr and "longer than the model's context" in result.stderr
    assert f"{path}:3: invalid JSON" in result.stderr
    assert (out / "ok" / "suppression.npz").is_file()
    result = runner.invoke(app, ["suppress", str(path), *MODEL, "--layers", "0,7"])
    assert result.exit_code == 1 and "layer 7 does not exist" in result.stderr
    result = runner.invoke(app, ["patch", str(path), *MODEL, "--out", str(out)])
    assert result.exit_code == 2 and "--replacements" in result.stderr and "anchors score --out" in result.stderr
    result = runner.invoke(app, ["suppress", str(path), *MODEL, "--layers", "two"])
    assert result.exit_code == 2 and "--layers takes indices" in result.stderr
