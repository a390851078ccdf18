"""The black-box metrics on outcome keys (anchors.outcomes wired into scoring), against the planted world written
in each outcome's format: the planted sentence still comes out on top when answers are letters, regex classes,
a python grader's keys or an LLM judge's classes; a grader that hangs or raises is counted per rollout and never
stops the run; the outcome's file hash is a settings conflict."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anchors.analysis import BlackBox, run_blackbox
from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.counterfactual import counterfactual_importance
from anchors.methods.blackbox.sampling import sample_trace_rollouts
from anchors.methods.blackbox.scores import score_trace
from anchors.models.templates import r1_distill_template
from anchors.outcomes import ChoiceOutcome, MathOutcome, PythonConfig, PythonOutcome, parse_outcome
from anchors.results import ResultsConflict, ResultsDir
from anchors.testing import WORD_GRADER, PlantedWorld, word_judge_outcome, word_regex_outcome

TEMPLATE = r1_distill_template()
RANKING = BlackBoxConfig(bootstrap=0, permutations=0)


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")


def _ranked_first(world: PlantedWorld, outcome, seeds: int, rollouts: int) -> int:
    config = BlackBoxConfig(rollouts=rollouts, matrix=False, outcome=outcome().spec)
    first = 0
    for seed in range(seeds):
        rollouts_ = sample_trace_rollouts(world.trace(), world.sampler(), TEMPLATE, replace(config, seed=seed),
                                          progress=False, outcome=outcome())
        kl = counterfactual_importance(rollouts_, world.embedder(), RANKING).importance_kl.value
        first += int(np.nanargmax(kl)) == world.planted
    return first


def test_a_judge_outcome_ranks_the_planted_sentence_first_in_95_of_100_seeds(record_property) -> None:
    world = PlantedWorld(answer_format="words")
    first = _ranked_first(world, word_judge_outcome, seeds=100, rollouts=50)
    record_property("judge_planted_ranked_first", f"{first}/100")
    print(f"judge outcome: planted sentence ranked first by counterfactual KL in {first}/100 seeds (N = 50)")
    assert first >= 95


@pytest.mark.parametrize(("answer_format", "outcome"), [("choice", ChoiceOutcome), ("words", word_regex_outcome)])
def test_letters_and_regex_classes_rank_the_planted_sentence_first(answer_format: str, outcome) -> None:
    first = _ranked_first(PlantedWorld(answer_format=answer_format), outcome, seeds=20, rollouts=50)
    assert first >= 19


def test_every_format_gives_the_same_keys_up_to_renaming_and_the_same_verdicts() -> None:
    """The causal structure does not depend on how answers are written: the same seed gives the same rollouts'
    verdicts in math, letters and classes, and keys that map one to one."""
    runs = {}
    for answer_format, outcome in (("math", MathOutcome), ("choice", ChoiceOutcome), ("words", word_regex_outcome)):
        world = PlantedWorld(n_sentences=5, planted=2, decoy=1, answer_format=answer_format)
        config = BlackBoxConfig(rollouts=6, matrix=False, outcome=outcome().spec)
        runs[answer_format] = sample_trace_rollouts(world.trace(), world.sampler(), TEMPLATE, config, progress=False,
                                                    outcome=outcome())
    flat = {f: [(r.answer, r.correct) for p in run.prefixes for r in (*p.resampled, *(p.forced or ()))] for f, run in runs.items()}
    world = PlantedWorld(answer_format="choice")
    assert [c for _, c in flat["math"]] == [c for _, c in flat["choice"]] == [c for _, c in flat["words"]]
    assert [world.key(a) for a, _ in flat["math"]] == [a for a, _ in flat["choice"]]
    assert all(r.status == "ok" for run in runs.values() for p in run.prefixes for r in p.resampled)


def test_a_python_grader_gives_the_regex_keys(tmp_path: Path) -> None:
    grader = tmp_path / "word_grader.py"
    grader.write_text(WORD_GRADER)
    world = PlantedWorld(n_sentences=3, planted=1, decoy=0, answer_format="words")
    python = PythonOutcome(PythonConfig(module=str(grader), function="grade", timeout_s=20))
    config = BlackBoxConfig(rollouts=2, matrix=False, outcome=python.spec)
    by_python = sample_trace_rollouts(world.trace(), world.sampler(), TEMPLATE, config, progress=False, outcome=python)
    regex = word_regex_outcome()
    by_regex = sample_trace_rollouts(world.trace(), world.sampler(), TEMPLATE, replace(config, outcome=regex.spec),
                                     progress=False, outcome=regex)
    keys = lambda run: [(r.answer, r.correct) for p in run.prefixes for r in (*p.resampled, *(p.forced or ()))]  # noqa: E731
    assert keys(by_python) == keys(by_regex)


HANGS_OR_RAISES = '''
import time


def grade(answer, context):
    if "refuse" in answer:
        time.sleep(60)
    if "report" in answer:
        raise ValueError("this grader cannot read reports")
    for word in ("leverage", "comply"):
        if word in answer:
            return word
    return None
'''


def test_a_python_grader_that_hangs_or_raises_is_counted_per_rollout_and_the_run_goes_on(tmp_path: Path) -> None:
    grader = tmp_path / "flaky.py"
    grader.write_text(HANGS_OR_RAISES)
    world = PlantedWorld(n_sentences=3, planted=1, decoy=0, answer_format="words", p_correct_without=0.0)
    outcome = PythonOutcome(PythonConfig(module=str(grader), function="grade", timeout_s=1.5))
    config = BlackBoxConfig(rollouts=3, matrix=False, bootstrap=0, permutations=0, outcome=outcome.spec)
    from anchors.testing import HashEmbedder

    scores = score_trace(world.trace(), world.sampler(), TEMPLATE, config, embedder=HashEmbedder(), progress=False,
                         outcome=outcome)
    timeouts, errors = scores.run["rollouts_grading_timeout"], scores.run["rollouts_grading_error"]
    assert timeouts >= 1 and errors >= 1, scores.run  # the world writes 'refuse' and 'report' answers (seed 0)
    assert sum(r.n_timeout for r in scores.rows) + sum(r.n_error for r in scores.rows) <= timeouts + errors
    assert sum(r.n_timeout for r in scores.rows) >= 1 and sum(r.n_error for r in scores.rows) >= 1
    assert len(scores.rows) == 3 and all(r.n_resampled == 3 for r in scores.rows)  # every rollout was kept


def test_a_changed_class_file_is_a_settings_conflict(tmp_path: Path) -> None:
    classes = tmp_path / "classes.json"
    classes.write_text('{"leverage": "\\\\bleverage\\\\b", "comply": "\\\\bcomply\\\\b"}')
    world = PlantedWorld(n_sentences=3, planted=1, decoy=0, answer_format="words")
    from anchors.testing import HashEmbedder

    def run(out: ResultsDir) -> None:
        outcome = parse_outcome(f"regex:{classes}")
        config = BlackBoxConfig(rollouts=2, matrix=False, bootstrap=0, permutations=0, outcome=outcome.spec)
        run_blackbox([world.trace()], world.sampler(), TEMPLATE, BlackBox(config, tags="none", outcome=outcome), out,
                     embedder=HashEmbedder())

    out = ResultsDir(tmp_path / "results")
    run(out)
    run(out)  # the same file: the same settings, replaced in place
    classes.write_text('{"leverage": "\\\\bleverage\\\\b", "comply": "\\\\b(comply|accept)\\\\b"}')
    with pytest.raises(ResultsConflict, match="outcome_sha256"):
        run(out)
