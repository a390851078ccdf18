"""`anchors label`: tags per sentence as JSONL, refitting the offline tagger, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.traces.segment import split_sentences
from anchors.traces.taxonomy import THOUGHT_ANCHORS

runner = CliRunner()
THINKING = ("Okay, so I need to add 17 and 25. Let me think about how to do this. 17 + 25 = 42. "
            "Wait, let me double-check: 25 + 17 = 42, correct. **Final Answer** \\boxed{42}")


@pytest.fixture()
def traces(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    rows = [{"id": f"t{i}", "problem": "What is 17 + 25?", "thinking": THINKING, "answer_text": "\\boxed{42}"} for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    return path


@pytest.fixture()
def labelled(tmp_path: Path) -> Path:
    sentences = [("Okay, so the problem asks for 3 times 4.", "problem_setup"), ("Let me compute it.", "plan_generation"),
                 ("3 * 4 = 12.", "active_computation"), ("Wait, is that right?", "uncertainty_management"),
                 ("So the answer is 12.", "final_answer_emission")]
    rows = [{"id": f"l{i}", "sentences": [{"text": t, "tags": [g]} for t, g in sentences]} for i in range(3)]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_label_writes_one_line_per_sentence_and_reports_bad_lines(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    result = runner.invoke(app, ["label", str(traces), "--labeller", "offline", "--out", str(out)])
    assert result.exit_code == 1, result.output  # the broken line
    assert f"{traces}:3: invalid JSON" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * len(split_sentences(THINKING))
    assert {r["trace_id"] for r in rows} == {"t0", "t1"}
    assert all(r["tag"] in THOUGHT_ANCHORS.names and r["tags"][0] == r["tag"] for r in rows)
    assert rows[0]["tag"] == "problem_setup" and rows[-1]["tag"] == "final_answer_emission"
    assert rows[0]["labeller"].startswith("offline:") and rows[0]["depends_on"] is None
    assert rows[0]["schema_version"] == 1 and THINKING[rows[2]["start"]:rows[2]["end"]] == rows[2]["text"]


def test_label_prints_a_table_without_out(traces: Path) -> None:
    result = runner.invoke(app, ["label", str(traces), "--labeller", "offline", "--skip-invalid"])
    assert result.exit_code == 0 and "final_answer_emission" in result.stdout and "t1:" in result.stdout


def test_fit_then_label_with_the_fitted_tagger(labelled: Path, traces: Path, tmp_path: Path) -> None:
    model = tmp_path / "tagger.npz"
    fitted = runner.invoke(app, ["label", "--fit", str(labelled), "--out", str(model)])
    assert fitted.exit_code == 0, fitted.output
    assert model.is_file() and "no training sentences for" in fitted.stderr  # 5 of the 8 tags only
    out = tmp_path / "labels.jsonl"
    result = runner.invoke(app, ["label", str(traces), "--tagger", str(model), "--out", str(out), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    tags = {json.loads(line)["tag"] for line in out.read_text().splitlines()}
    assert tags <= {"problem_setup", "plan_generation", "active_computation", "uncertainty_management", "final_answer_emission"}


def test_fit_text_only_writes_a_model_without_embeddings(labelled: Path, traces: Path, tmp_path: Path) -> None:
    from anchors.labels.offline import OfflineTagger

    model = tmp_path / "text.npz"
    fitted = runner.invoke(app, ["label", "--fit", str(labelled), "--text-only", "--out", str(model)])
    assert fitted.exit_code == 0, fitted.output
    loaded = OfflineTagger.load(model)
    assert loaded.config.embedder is None and loaded.meta["embedder_identity"] is None
    assert loaded.coef.shape[1] == loaded.features(["x = 1."]).shape[1]  # no embedding columns computed or needed
    misused = runner.invoke(app, ["label", str(traces), "--text-only"])
    assert misused.exit_code == 2 and "--text-only only applies to fitting" in misused.stderr


def test_saved_labels_are_a_training_set_for_fit(traces: Path, tmp_path: Path) -> None:
    from anchors.labels.dataset import read_labelled

    saved, out = tmp_path / "labelled.jsonl", tmp_path / "labels.jsonl"
    result = runner.invoke(app, ["label", str(traces), "--labeller", "offline", "--out", str(out),
                                 "--save-labelled", str(saved), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert f"wrote 2 labelled traces to {saved}" in result.stdout
    labelled = read_labelled(saved)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [t.id for t in labelled] == ["t0", "t1"] and labelled[0].problem == "What is 17 + 25?"
    assert [tag for t in labelled for tag in t.primary_tags] == [r["tag"] for r in rows]
    assert labelled[0].texts == [r["text"] for r in rows if r["trace_id"] == "t0"]
    fitted = runner.invoke(app, ["label", "--fit", str(saved), "--text-only", "--out", str(tmp_path / "mine.npz")])
    assert fitted.exit_code == 0 and "fitted on 2 traces" in fitted.stdout, fitted.output


def test_fit_from_a_thought_anchors_folder(ta_data: Path, tmp_path: Path) -> None:
    folder = ta_data / "deepseek-r1-distill-qwen-14b" / "correct_base_solution"
    model = tmp_path / "ta.npz"
    result = runner.invoke(app, ["label", "--fit", str(folder), "--out", str(model)])
    assert result.exit_code == 0, result.output
    assert "fitted on 5 traces" in result.stdout and model.is_file()


def test_fit_reports_bad_labelled_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "sentences": [{"text": "hi"}]}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["label", "--fit", str(bad), "--out", str(tmp_path / "m.npz")])
    assert result.exit_code == 2 and f"{bad}:1: field 'sentences.0.tags'" in result.stderr


def test_fit_rejects_tags_not_in_the_taxonomy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "sentences": [{"text": "hi", "tags": ["greeting"]},
                                                        {"text": "2+2=4", "tags": ["active_computation"]}]}) + "\n")
    result = runner.invoke(app, ["label", "--fit", str(bad), "--out", str(tmp_path / "m.npz")])
    assert result.exit_code == 2 and "tag 'greeting'" in result.stderr


def test_llm_labeller_without_an_endpoint_says_how_to_configure_one(traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANCHORS_LABEL_BASE_URL", raising=False)
    result = runner.invoke(app, ["label", str(traces), "--labeller", "llm"])
    assert result.exit_code == 2 and "ANCHORS_LABEL_BASE_URL" in result.stderr


def test_fit_output_must_be_npz(labelled: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["label", "--fit", str(labelled), "--out", str(tmp_path / "model.pkl")])
    assert result.exit_code == 2 and ".npz" in result.stderr
