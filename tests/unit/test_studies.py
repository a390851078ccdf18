"""The hint and insertions studies against planted worlds (anchors.testing_studies), their results through the
contract, and sentence subsets (`sentences` / `--sentences`): a chosen sentence gets exactly a full run's numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anchors.analysis import InsertionInputs, run_causality_tests, write_reports
from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.sampling import sample_trace_rollouts
from anchors.methods.blackbox.scores import score_rollouts
from anchors.methods.causality.hint import HintConfig, cue_keywords, hint_study, mentions_by_string, trace_cue
from anchors.methods.causality.insertions import InsertionsConfig, insertion_study
from anchors.methods.causality.run import CausalityConfig
from anchors.methods.causality.sampling import TraceSampler
from anchors.models.templates import r1_distill_template
from anchors.outcomes import ChoiceOutcome
from anchors.results import ResultsDir, read_trace_results
from anchors.rollouts.plan import needed_prefixes
from anchors.testing import HashEmbedder, PlantedWorld
from anchors.testing_studies import CueWorld, InsertionWorld

TEMPLATE = r1_distill_template()


@pytest.fixture(autouse=True)
def _no_grade_file_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_NO_CACHE", "1")


def cue_sampler(world: CueWorld) -> TraceSampler:
    return TraceSampler(sampler=world.sampler(), template=TEMPLATE, outcome=ChoiceOutcome(), count_tokens=lambda t: len(t.split()))


# --- hint --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mentions", [False, True])
def test_the_hint_study_recovers_the_planted_cue_effect_and_whether_the_trace_mentions_it(mentions: bool) -> None:
    world = CueWorld(mentions=mentions)
    config = HintConfig(samples=200, rollouts=60, fractions=(0.0, 0.5, 1.0))
    result = hint_study(cue_sampler(world), [world.trace()], HashEmbedder(), config)
    (trace,) = result.traces
    truth = world.truth()
    # 200 answers per prompt: the shares' standard errors are ~0.035, the effect's ~0.05 (deterministic seeds)
    assert trace.uncued_cued_share == pytest.approx(truth["uncued_share"], abs=0.1)
    assert trace.cued_cued_share == pytest.approx(truth["cued_share"], abs=0.1)
    assert trace.cue_effect == pytest.approx(truth["cue_effect"], abs=0.15)
    assert trace.follows_cue and trace.cue_answer == "A"
    assert trace.mentions_cue is mentions and trace.unfaithful is (not mentions)
    assert trace.first_mention == (world.mention_at if mentions else None)
    summary = result.summary()
    assert summary["unfaithful_share"] == (0.0 if mentions else 1.0) and summary["cue_following_rate"] == 1.0
    # the planted sentence carries the cue's effect: the largest importance for the cued answer, near its value
    importance = {row.sentence_index: row.importance for row in result.sentences}
    assert max(importance, key=importance.get) == world.planted
    assert importance[world.planted] == pytest.approx(truth["planted_importance"], abs=0.15)
    # transplanting the cued trace's sentences (the planted one among them) into the uncued prompt moves the answer
    curve = {row.fraction: row.cued_share for row in result.transplant}
    assert curve[0.0] == pytest.approx(truth["uncued_share"], abs=0.15) and curve[1.0] > 0.75


def test_cue_markers_come_from_the_cue_text_not_the_problem() -> None:
    world = CueWorld()
    cue = trace_cue(world.trace())
    assert cue is not None and cue.keywords == cue_keywords(world.cue_text, world.problem) == ("stanford", "professor")
    assert mentions_by_string("The Stanford result is useful.", cue)
    assert mentions_by_string("Maybe the hint is right.", cue)  # a generic reference to a hint
    assert not mentions_by_string("Let me check the first option again.", cue)
    assert trace_cue(PlantedWorld().trace()) is None


def test_hint_results_go_to_the_cued_traces_folder_and_back(tmp_path: Path) -> None:
    world = CueWorld(mentions=True)
    config = CausalityConfig(tests=("hint",), hint=HintConfig(samples=8, rollouts=4, fractions=(0.0, 1.0)))
    out = ResultsDir(tmp_path)
    result = run_causality_tests([world.trace()], config, out, sampler=cue_sampler(world), embed=HashEmbedder())
    cued = result.hint.cued_traces[0]
    assert cued.id == "cue.cued" and world.cue_text in cued.prompt
    loaded = read_trace_results(tmp_path / "cue.cued")
    assert "hint" in loaded.methods and loaded.summaries["hint"]["follows_cue"] is True
    assert list(loaded.tables["hint_transplant"]["fraction"]) == [0.0, 1.0]
    assert "hint_importance" in loaded.sentences.columns and len(loaded.sentences) == len(result.hint.sentences)
    assert loaded.info["run"]["hint"]["settings"]["outcome"] == "choice"
    # the reports of a run include the cued trace's (the original trace's folder has nothing of the hint study)
    written = write_reports(out, [world.trace().id])
    assert written == [tmp_path / "cue.cued" / "report.html"]
    assert 'data-plot="hint_transplant"' in written[0].read_text()
    # a rerun with the same settings replaces the folder's results in place (the same cued trace is sampled again)
    again = run_causality_tests([world.trace()], config, out, sampler=cue_sampler(world), embed=HashEmbedder())
    assert again.hint.cued_traces[0].thinking == cued.thinking


# --- insertions --------------------------------------------------------------------------------------------


def test_the_insertion_study_recovers_a_planted_on_off_policy_gap() -> None:
    world = InsertionWorld()
    sampler = TraceSampler(sampler=world.sampler(), template=TEMPLATE, count_tokens=world.count_tokens,
                           token_logprobs=world.token_logprobs)
    config = InsertionsConfig(samples=120, candidates=8)
    result = insertion_study(sampler, [world.trace()], world.embedder(), config, sentences=[3],
                             other_traces={"ins": world.other_trace()})
    rows = {r.condition: r for r in result.rows}
    assert set(rows) == {"baseline", "handwritten", "on_policy", "other_model"}
    assert rows["on_policy"].text == world.on_policy_text and rows["other_model"].text == world.other_text
    assert rows["on_policy"].logprob_source == "sampled" and rows["handwritten"].logprob_source == "scored"
    for condition, truth in world.truth().items():
        # 120 continuations per condition: a match rate's standard error is ≤ 0.046, a shift's ≤ 0.065
        assert rows[condition].match_shift == pytest.approx(truth["match_shift"], abs=0.15), condition
        assert rows[condition].mean_logprob == pytest.approx(truth["mean_logprob"], abs=1e-9), condition
    summary = result.summary()
    assert summary["handwritten_minus_on_policy_kl_shift"] > 0.5  # the off-policy edit overstates the effect
    assert summary["handwritten_minus_on_policy_logprob"] == pytest.approx(-5.5)


def test_insertions_without_a_scorer_leave_off_policy_logprobs_nan(tmp_path: Path) -> None:
    world = InsertionWorld()
    sampler = TraceSampler(sampler=world.sampler(), template=TEMPLATE, count_tokens=world.count_tokens)
    config = CausalityConfig(tests=("insertions",), insertions=InsertionsConfig(samples=3, candidates=4, positions=1))
    run_causality_tests([world.trace()], config, ResultsDir(tmp_path), sampler=sampler, embed=world.embedder(),
                        insertions=InsertionInputs(identity={"insertions_sha256": None, "other_traces_sha256": None}))
    table = read_trace_results(tmp_path / "ins").tables["insertions"]
    assert set(table["condition"]) == {"baseline", "handwritten", "on_policy"}
    handwritten = table[table.condition == "handwritten"].iloc[0]
    assert np.isnan(handwritten["mean_logprob"]) and pd.isna(handwritten["logprob_source"])  # null read back as NaN


# --- sentence subsets --------------------------------------------------------------------------------------


def test_needed_prefixes_are_each_chosen_sentence_and_the_one_after() -> None:
    assert needed_prefixes(10, [3, 5, 6, 7]) == [3, 4, 5, 6, 7, 8]
    assert needed_prefixes(10, [9]) == [9]  # paper mode: no prefix after the last sentence
    assert needed_prefixes(11, [9]) == [9, 10]


def test_a_sentence_subset_gives_the_full_runs_numbers_for_the_chosen_sentences() -> None:
    world = PlantedWorld(n_sentences=7, planted=4, decoy=2)
    config = BlackBoxConfig(rollouts=12, matrix=False, bootstrap=50, permutations=50)
    full = score_rollouts(sample_trace_rollouts(world.trace(), world.sampler(), TEMPLATE, config, progress=False),
                          world.embedder(), config)
    sampler = world.sampler()
    subset_config = replace(config, sentences=(1, 4, 5, 99))  # 99: past the end, skipped for this trace
    subset = score_rollouts(sample_trace_rollouts(world.trace(), sampler, TEMPLATE, subset_config, progress=False),
                            world.embedder(), subset_config)
    # same streams, same seeds: the chosen sentences' point estimates are the full run's, bit for bit (one machine)
    for i in (1, 4, 5):
        for metric in ("counterfactual_importance_kl", "resampling_importance_accuracy", "forced_importance_kl",
                       "different_trajectories_fraction"):
            assert getattr(subset.rows[i], metric) == getattr(full.rows[i], metric), (i, metric)
    for i in (0, 2, 3, 6):
        row = subset.rows[i]
        assert row.counterfactual_importance_kl is None and row.n_resampled is None and row.anchor is None
    # only the prefixes the chosen sentences need were sampled: 1, 2, 4, 5, 6, resampled and forced (the world
    # always answers, so nothing is closed)
    assert sampler.calls == 2 * 12 * 5
