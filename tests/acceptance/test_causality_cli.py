"""`anchors causality` end to end: the authors' traces (validity, no model), every test on a tiny random model,
early answering on the bundled model, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from anchors.cli import app

runner = CliRunner()

TRACES = [
    {"id": "apples", "problem": "Tom has 12 apples. He gives 5 away and buys 8 more. How many apples does he have?",
     "thinking": "Tom starts with 12 apples.\nHe gives 5 away, so 12 - 5 = 7.\nThen he buys 8 more, so 7 + 8 = 15.",
     "answer_text": "\n\nThe final answer is \\boxed{15}.", "gold_answer": "15"},
    {"id": "eggs", "problem": "A box holds 6 eggs. How many eggs are in 7 boxes?",
     "thinking": "Each box has 6 eggs.\nThere are 7 boxes, so 6 × 7 = 43.", "answer_text": "\\boxed{43}", "gold_answer": "42"},
]  # fmt: skip
SMALL = ["--samples", "1", "--points", "2", "--continuations", "1", "--continue-tokens", "3", "--answer-tokens", "3",
         "--mistakes-per-trace", "1", "--chains", "1", "--max-rounds", "1"]  # fmt: skip


@pytest.fixture()
def traces_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TRACES), encoding="utf-8")
    return path


def test_validity_on_the_authors_traces_needs_no_model(ta_data: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["causality", "--from-ta", str(ta_data), "--tests", "validity", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "step_validity_contingency.csv").set_index("validity")
    assert table.loc["all", "total"] == 20
    assert table.loc["all", "correct"] == 10 and table.loc["all", "incorrect"] == 10  # the release's is_correct
    assert table.loc[["valid", "invalid", "no_claim"], "total"].sum() == 20
    traces = pd.read_csv(tmp_path / "step_validity_traces.csv")
    assert (traces["correct_source"] == "recorded").all()
    assert (traces["n_claims"] > 0).all()  # every released trace has checkable arithmetic
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["sampler"] is None and manifest["n_traces"] == 20
    assert "Step validity × answer correctness" in result.stdout


def test_every_test_runs_end_to_end_on_a_tiny_model(traces_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["causality", str(traces_file), "--model", "tiny-qwen2", "--device", "cpu", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    for name in ("step_validity_traces", "early_answering_points", "filler", "mistakes_sentences", "paraphrase", "resilience"):
        assert (out / f"{name}.jsonl").is_file() and (out / f"{name}.csv").is_file()
    points = pd.read_csv(out / "early_answering_points.csv")
    assert points.groupby("trace_id")["k"].apply(list).to_dict() == {"apples": [0, 3], "eggs": [0, 2]}  # no trace, all of it
    assert (points["n_samples"] == 1).all()
    filler = pd.read_csv(out / "filler.csv")
    assert set(filler["condition"]) == {"real", "none", "filler", "swapped"} and len(filler) == 8
    assert len(pd.read_csv(out / "mistakes_sentences.csv")) == 2  # one corrupted sentence per trace
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sampler"].startswith("hf:tiny-qwen2@") and manifest["config"]["early"]["points"] == 2


@pytest.mark.slow
def test_early_answering_on_the_bundled_model(traces_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["causality", str(traces_file), "--tests", "early", "--limit", "1", "--out", str(tmp_path),
                                 "--device", "cpu", "--samples", "2", "--points", "2", "--answer-tokens", "4"])
    assert result.exit_code == 0, result.output
    points = pd.read_csv(tmp_path / "early_answering_points.csv")
    assert points["n_samples"].tolist() == [2, 2]
    assert points["n_answered"].sum() > 0  # the bundled model closes its forced box
    curve = json.loads((tmp_path / "early_answering_curve.json").read_text())
    assert curve["schema_version"] == 1 and len(curve["match_mean"]) == 21


def test_bad_input(traces_file: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["causality", str(tmp_path / "nope.jsonl"), "--tests", "validity"])
    assert missing.exit_code == 2 and "nope.jsonl" in missing.stderr
    unknown = runner.invoke(app, ["causality", str(traces_file), "--tests", "validity,astrology"])
    assert unknown.exit_code == 2 and "unknown test(s) astrology" in unknown.stderr
    fractions = runner.invoke(app, ["causality", str(traces_file), "--tests", "validity", "--paraphrase-fractions", "half"])
    assert fractions.exit_code == 2 and "--paraphrase-fractions" in fractions.stderr
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(traces_file.read_text() + "{broken\n", encoding="utf-8")
    partial = runner.invoke(app, ["causality", str(mixed), "--tests", "validity", "--out", str(tmp_path / "o")])
    assert partial.exit_code == 1 and f"{mixed}:3: invalid JSON" in partial.stderr
    assert len(pd.read_csv(tmp_path / "o" / "step_validity_traces.csv")) == 2  # the good lines were processed


def test_authors_importance_maps_onto_default_sentences(ta_data: Path) -> None:
    import numpy as np

    from anchors.methods.resilience import importance_from_thought_anchors, select_sentences
    from anchors.traces.segment import split_sentences
    from anchors.thought_anchors import ProblemFolder, load_thought_anchors

    traces = load_thought_anchors(ta_data)
    scores = importance_from_thought_anchors(traces)
    assert set(scores) == {t.id for t in traces}
    for trace in traces[:3]:
        chunks = ProblemFolder(trace.metadata["source_dir"], ta_data).chunks()
        values = [c.counterfactual_importance_kl for c in chunks]
        assert len(scores[trace.id]) == len(split_sentences(trace.thinking))
        assert np.nanmax(scores[trace.id]) == max(values)  # the top chunk's score lands on some sentence
        assert len(select_sentences(len(scores[trace.id]), 2, scores[trace.id])) == 2


def test_authors_importance_needs_their_files(traces_file: Path) -> None:
    result = runner.invoke(app, ["causality", str(traces_file), "--tests", "resilience", "--importance", "ta", "--model", "tiny-qwen2"])
    assert result.exit_code == 2 and "chunks_labeled.json" in result.stderr
