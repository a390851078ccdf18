"""Rollouts in the authors' on-disk layouts: a scripted world written the way their pipeline writes it, read
back (`--from-ta`), scored, and checked with `compat check` (which must agree with itself and catch a change)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.compat import compat_check
from anchors.methods.blackbox.sampling import collect, prefix_requests, sampling_params
from anchors.rollouts.plan import plan_prompts, stream
from anchors.methods.blackbox.scores import score_rollouts
from anchors.methods.blackbox.ta_rollouts import load_ta_rollouts
from anchors.models.templates import paper_template
from anchors.testing import PlantedWorld
from anchors.traces.answers import extract_answer, grade
from anchors.traces.segment import split_sentences

WORLD = PlantedWorld(n_sentences=6, planted=3, decoy=1)
N = 30
TAGS = ["problem_setup", "plan_generation", "active_computation", "plan_generation", "active_computation", "final_answer_emission"]


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")


def write_authors_layout(root: Path, trace_id: int = 1) -> Path:
    """One problem folder as the authors' scripts write it, from the scripted world's paper-mode rollouts."""
    trace = WORLD.trace()
    problem_dir = root / "scripted-model" / "correct_base_solution" / f"problem_{trace_id}"
    forced_dir = root / "scripted-model" / "correct_base_solution_forced_answer" / f"problem_{trace_id}"
    sentences = split_sentences(trace.thinking, mode="paper")
    plan = plan_prompts(trace, sentences, paper_template(), "paper")
    config = BlackBoxConfig(mode="paper", rollouts=N, seed=trace_id)
    requests = prefix_requests(plan, [N] * len(sentences), config)
    got = collect(WORLD.sampler(), [r for (kind, _), rs in requests.items() if kind == "resample" for r in rs],
                  sampling_params(config), progress=False)
    forced = collect(WORLD.sampler(), [r for (kind, _), rs in requests.items() if kind == "forced" for r in rs],
                     sampling_params(config, True), progress=False)
    prompt = paper_template().render(trace.problem)
    _write(problem_dir / "problem.json", {"problem": trace.problem, "gt_answer": trace.gold_answer})
    _write(problem_dir / "base_solution.json", {"prompt": prompt, "solution": trace.thinking + "</think>" + trace.answer_text,
                                                "answer": "42", "is_correct": True})
    for i, sentence in enumerate(sentences):
        records = []
        for _, rollout in stream(got, requests["resample", i], 0, N):
            answer = extract_answer(rollout.text, "paper") or ""
            records.append({"chunk_removed": sentence.text, "prefix_without_chunk": plan.prefixes[i],
                            "chunk_resampled": split_sentences(rollout.text, mode="paper")[0].text, "rollout": rollout.text,
                            "answer": answer, "is_correct": bool(answer) and grade(rollout.text, "42", mode="paper").correct is True})
        records.append({"chunk_removed": sentence.text, "error": "API timeout"})  # a failed rollout, as they record it
        _write(problem_dir / f"chunk_{i}" / "solutions.json", records)
        forced_records = []
        for _, rollout in stream(forced, requests["forced", i], 0, N):
            answer = extract_answer(plan.forced_prompt(i) + rollout.text, "paper") or ""
            forced_records.append({"rollout": rollout.text, "answer": answer, "is_correct": answer == "42"})
        _write(forced_dir / f"chunk_{i}" / "solutions.json", forced_records)
    return problem_dir


def label(problem_dir: Path, root: Path) -> list[dict]:
    """chunks_labeled.json and chunks_resampled.json, computed by anchors itself in paper mode."""
    rollouts = load_ta_rollouts(problem_dir, root, mode="paper").rollouts
    scores = score_rollouts(rollouts, WORLD.embedder(), BlackBoxConfig(mode="paper", matrix=False))
    labeled = [{"chunk": row.text, "chunk_idx": row.index, "function_tags": [TAGS[row.index]], "depends_on": [],
                **{m: getattr(row, m) for m in ("accuracy", "resampling_importance_accuracy", "resampling_importance_kl",
                                                "counterfactual_importance_accuracy", "counterfactual_importance_kl",
                                                "forced_importance_accuracy", "forced_importance_kl",
                                                "different_trajectories_fraction", "overdeterminedness")}}
               for row in scores.rows]
    _write(problem_dir / "chunks_labeled.json", labeled)
    resampled = {str(i): [r.first_sentence for r in p.resampled] for i, p in enumerate(rollouts.prefixes)}
    _write(problem_dir / "chunks_resampled.json", resampled)
    return labeled


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    for problem in (1, 2, 3):
        label(write_authors_layout(tmp_path, problem), tmp_path)
    return tmp_path


def test_reading_the_full_layout(layout: Path) -> None:
    problem_dir = layout / "scripted-model" / "correct_base_solution" / "problem_1"
    loaded = load_ta_rollouts(problem_dir, layout)
    rollouts, tags = loaded.rollouts, loaded.tags
    assert rollouts.answers_known and rollouts.n == WORLD.n_sentences and tags == TAGS
    assert all(len(p.resampled) == N and p.failed == 1 and len(p.forced) == N for p in rollouts.prefixes)
    assert all(r.sentences for p in rollouts.prefixes for r in p.resampled)


def test_compat_check_agrees_with_itself_and_catches_a_change(layout: Path) -> None:
    report = compat_check(layout, WORLD.embedder())
    assert report.traces == 3
    for name, check in report.checks.items():
        assert check.compared > 0 and check.within == check.compared, name
    assert report.checks["segmentation"].compared == 3
    assert report.checks["counterfactual_importance_kl"].compared == 3 * WORLD.n_sentences
    assert {row["tag"] for row in report.category_table} <= {"plan_generation", "active_computation"}

    path = layout / "scripted-model" / "correct_base_solution" / "problem_2" / "chunks_labeled.json"
    labeled = json.loads(path.read_text())
    labeled[2]["accuracy"] += 0.01
    labeled[4]["different_trajectories_fraction"] += 0.05
    path.write_text(json.dumps(labeled))
    report = compat_check(layout, WORLD.embedder())
    assert report.checks["delta_accuracy"].compared - report.checks["delta_accuracy"].within == 2  # sentences 1 and 2
    assert report.checks["different_trajectories_fraction"].compared - report.checks["different_trajectories_fraction"].within == 1


def test_viewer_layout_computes_only_what_first_sentences_allow(layout: Path) -> None:
    problem_dir = layout / "scripted-model" / "correct_base_solution" / "problem_1"
    for chunk in problem_dir.glob("chunk_*"):
        for file in chunk.iterdir():
            file.unlink()
        chunk.rmdir()
    rollouts = load_ta_rollouts(problem_dir, layout).rollouts
    assert not rollouts.answers_known
    scores = score_rollouts(rollouts, WORLD.embedder(), BlackBoxConfig(mode="paper"))
    assert "accuracy" in scores.not_computed and "counterfactual_importance_kl" in scores.not_computed
    assert scores.matrix is None and all(row.accuracy is None for row in scores.rows)
    stored = json.loads((problem_dir / "chunks_labeled.json").read_text())
    ours = scores.values("different_trajectories_fraction")
    # the file's values were computed over rollouts with an answer: here all of them have one
    assert ours == pytest.approx([c["different_trajectories_fraction"] for c in stored])
