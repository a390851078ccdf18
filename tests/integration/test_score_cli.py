"""`anchors score` end to end on a scripted sampler and embedder (no model): on a JSONL file (a damaged line
reported, the rest scored), adaptive, with --profile, and from the authors' layout (--from-ta)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.models.templates import paper_template

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_ta_layout import TAGS, WORLD, layout  # noqa: E402,F401 (layout: the fixture of the authors' layout)


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")


def test_cli_score_on_a_jsonl_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import anchors.cli.score as score_cli
    from anchors.models import embeddings

    monkeypatch.setattr(score_cli, "build_sampler", lambda *args, **kwargs: (WORLD.sampler(), paper_template()))
    monkeypatch.setattr(embeddings, "SentenceEmbedder", lambda *a, **k: WORLD.embedder())
    traces = tmp_path / "traces.jsonl"
    traces.write_text(WORLD.trace("w-1").to_json_line() + "\n" + "{broken\n" + WORLD.trace("w-2").to_json_line() + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["score", str(traces), "--rollouts", "20", "--bootstrap", "100", "--out", str(out),
                                      "--tags", "none"])  # the offline tagger needs the real embedder
    assert result.exit_code == 1  # the broken line is reported and the good traces are still scored
    assert f"{traces}:2: invalid JSON" in result.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["w-1", "w-2"]
    assert "w-1: top 5 sentences by counterfactual_importance_kl" in result.stdout
    rows = [json.loads(line) for line in (out / "w-1" / "scores.jsonl").read_text().splitlines()]
    assert max(rows, key=lambda r: r["counterfactual_importance_kl"])["index"] == WORLD.planted
    adaptive = CliRunner().invoke(app, ["score", str(traces), "--adaptive", "--rollouts", "10", "--max-rollouts", "20",
                                        "--bootstrap", "100", "--out", str(tmp_path / "adaptive"), "--skip-invalid", "--limit", "1",
                                            "--tags", "none"])
    assert adaptive.exit_code == 0, adaptive.output
    manifest = json.loads((tmp_path / "adaptive" / "w-1" / "manifest.json").read_text())
    summary = manifest["methods"]["blackbox"]["summary"]
    assert summary["adaptive_rounds"] >= 1 and summary["per_prefix"][0] >= 10


def test_cli_score_profile_records_the_phases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import anchors.cli.score as score_cli
    from anchors.methods.blackbox.phases import PHASES
    from anchors.models import embeddings

    monkeypatch.setattr(score_cli, "build_sampler", lambda *args, **kwargs: (WORLD.sampler(), paper_template()))
    monkeypatch.setattr(embeddings, "SentenceEmbedder", lambda *a, **k: WORLD.embedder())
    traces = tmp_path / "traces.jsonl"
    traces.write_text(WORLD.trace("w-1").to_json_line() + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["score", str(traces), "--rollouts", "10", "--bootstrap", "20", "--out", str(out),
                                      "--profile", "--tags", "none"])
    assert result.exit_code == 0, result.output
    timing = json.loads((out / "w-1" / "manifest.json").read_text())["methods"]["blackbox"]["summary"]["timing"]
    sampled = [p for p in PHASES if p != "sampling_closing"]  # the planted sampler always answers: none closed
    assert sorted(timing) == sorted(f"{p}_seconds" for p in sampled) and all(v >= 0 for v in timing.values())
    assert "w-1: " in result.stdout and "by phase" in result.stdout and "embedding" in result.stdout
    assert (out / "profile.pstats").stat().st_size > 0 and "cumulative" in result.stdout


def test_cli_score_from_ta(layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anchors.models import embeddings

    monkeypatch.setattr(embeddings, "SentenceEmbedder", lambda *a, **k: WORLD.embedder())
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["score", "--from-ta", str(layout), "--mode", "paper", "--out", str(out)])
    assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == [f"scripted-model--correct_base_solution--problem_{i}" for i in (1, 2, 3)]
    rows = [json.loads(line) for line in (out / folders[0] / "scores.jsonl").read_text().splitlines()]
    assert [r["tag"] for r in rows] == TAGS
    stored = json.loads((layout / "scripted-model" / "correct_base_solution" / "problem_1" / "chunks_labeled.json").read_text())
    for ours, theirs in zip(rows, stored):
        assert math.isclose(ours["counterfactual_importance_kl"], theirs["counterfactual_importance_kl"], abs_tol=1e-12)
    assert "top" in result.stdout and "counterfactual_importance_kl" in result.stdout
