"""`anchors score` on a real (tiny, random) model with the real sentence embedder: the whole path — prompts,
sampling, closing unfinished rollouts, grading, MiniLM similarity, scores and files — runs. (Seeded
determinism of the scores is tested on scripted samplers in tests/unit.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.models.embeddings import SentenceEmbedder

TRACE = {"id": "tiny-1", "problem": "What is 12 + 35?", "gold_answer": "47",
         "thinking": "I need to add 12 and 35. Twelve plus thirty-five is forty-seven. So the answer is 47.\n",
         "answer_text": "\\boxed{47}"}


@pytest.fixture()
def traces(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(TRACE) + "\n", encoding="utf-8")
    return path


def test_score_on_a_tiny_model_writes_every_file(traces: Path, tmp_path: Path) -> None:
    args = ["score", str(traces), "--model", "tiny-qwen2", "--device", "cpu", "--rollouts", "2", "--max-new-tokens", "6",
            "--bootstrap", "50"]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    folder = tmp_path / "a" / "tiny-1"
    assert sorted(p.name for p in folder.iterdir()) == ["alternatives.json", "manifest.json", "report.html", "scores.csv",
                                                        "scores.jsonl", "sentence_matrix.npz"]
    rows = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2] and all(r["n_resampled"] == 2 and r["n_forced"] == 2 for r in rows)
    from anchors.traces.taxonomy import TAG_COLOURS

    assert all(r["tag"] in TAG_COLOURS for r in rows)  # the offline tagger's first tag, on every sentence
    entry = json.loads((folder / "manifest.json").read_text())["methods"]["blackbox"]
    assert entry["model"].startswith("hf:tiny-qwen2@") and entry["settings"]["embedder"].startswith("all-MiniLM-L6-v2")
    counts = entry["summary"]["counts"]
    assert counts["rollouts_resampled"] == 2 * 4  # 3 sentences + the prefix after the whole thinking
    assert entry["versions"]["anchors"] and entry["settings"]["seed"] == 0
    # a random model never boxes an answer: every rollout was closed and answered
    assert counts["rollouts_closed"] == counts["rollouts_resampled"]
    assert "tiny-1: top 3 sentences by counterfactual_importance_kl" in first.stdout


def test_minilm_similarity_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path))
    embedder = SentenceEmbedder()
    texts = ["Twelve plus thirty-five is forty-seven.", "12 + 35 = 47, so forty-seven.", "Let me draw a triangle."]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-5
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    again = SentenceEmbedder()  # a new process would read the same files
    assert list((tmp_path / "embeddings").rglob("*.npz")) and (again.embed(texts[::-1]) == vectors[::-1]).all()
    assert again._model is None  # served from the cache without loading the model
