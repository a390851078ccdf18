"""Trace-level tests against a scripted model with a planted answer mechanism (see scripted_model.py):
every method must tell the faithful model from the unfaithful one, with exact values where the mechanism
makes them exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from scripted_model import NUMBER, ScriptedModel, bag_of_words, make_trace, sampler

from anchors.methods.causality.early_answering import EarlyAnsweringConfig, early_answering, truncation_counts
from anchors.methods.causality.filler import FillerConfig, filler_tests, filler_text, swap_partners
from anchors.methods.causality.mistakes import MistakesConfig, inserted_mistakes
from anchors.methods.causality.paraphrase import ParaphraseConfig, paraphrase_test, prefix_counts
from anchors.methods.causality.resilience import ResilienceConfig, resilience, select_sentences

# ---------------------------------------------------------------------------------------------
# Early answering
# ---------------------------------------------------------------------------------------------


def test_early_answering_aoc_of_a_faithful_model_follows_the_planted_curve():
    result = early_answering(sampler(ScriptedModel()), [make_trace()], EarlyAnsweringConfig(samples=2, points=None))
    points = result.to_pandas()
    # kept sentences 0..4; last number written: none, 12, 7, 15, 15 -> matches the answer 15 from k = 3 on
    assert points["k"].tolist() == [0, 1, 2, 3, 4]
    assert points["match_rate"].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert points["accuracy"].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    (trace,) = result.traces
    assert trace.aoc == pytest.approx(0.25 + 0.25 + 0.125)  # area over y on [0, 1]: 1, 1, 1/2, 0 per quarter
    assert trace.aoc_normalized == pytest.approx(0.625)  # y(0) = 0: nothing to normalise away
    assert trace.reference_answer == "15" and trace.reference_correct is True


def test_early_answering_aoc_is_zero_when_the_answer_ignores_the_trace():
    result = early_answering(sampler(ScriptedModel(faithful=False)), [make_trace()], EarlyAnsweringConfig(samples=2, points=3))
    (trace,) = result.traces
    assert trace.aoc == 0.0 and trace.y_at_zero == 1.0
    assert np.isnan(trace.aoc_normalized)  # y(0) = 1: no room to normalise
    summary = result.summary()
    assert summary["aoc_mean"] == 0.0 and summary["n_correct_answers"] == 1


def test_early_answering_curve_and_buckets():
    traces = [make_trace("a"), make_trace("b", thinking="I know it.\nIt is 15.", answer="15")]
    result = early_answering(sampler(ScriptedModel()), traces, EarlyAnsweringConfig(samples=1, points=None))
    curve = result.curve()
    assert len(curve["x"]) == 21 and curve["x"][0] == 0.0 and curve["x"][-1] == 1.0
    assert curve["match_mean"][0] == 0.0 and curve["match_mean"][-1] == 1.0
    assert np.array(curve["match_per_trace"]).shape == (2, 21)
    buckets = result.buckets_frame()
    assert buckets["n_traces"].sum() == 2


def test_truncation_points():
    assert truncation_counts(4, None) == [0, 1, 2, 3, 4]
    assert truncation_counts(10, 3) == [0, 5, 10]
    assert truncation_counts(2, 6) == [0, 1, 2]
    with pytest.raises(Exception, match="at least 2 points"):
        truncation_counts(10, 1)


def test_same_seed_same_requests():
    first, second = ScriptedModel(), ScriptedModel()
    early_answering(sampler(first), [make_trace()], EarlyAnsweringConfig(samples=2, points=3, seed=7))
    early_answering(sampler(second), [make_trace()], EarlyAnsweringConfig(samples=2, points=3, seed=7))
    assert [(r.prompt_text, r.seed) for r in first.requests] == [(r.prompt_text, r.seed) for r in second.requests]


# ---------------------------------------------------------------------------------------------
# Filler and swapped traces
# ---------------------------------------------------------------------------------------------


def test_filler_and_swapped_traces_hurt_only_the_faithful_model():
    traces = [make_trace("a"), make_trace("b", thinking="Six boxes of 7.\n6 × 7 = 42.", answer="42", problem="eggs?")]
    faithful = filler_tests(sampler(ScriptedModel()), traces, FillerConfig(samples=2)).to_pandas().set_index(["trace_id", "condition"])
    assert faithful.loc[("a", "real"), "accuracy"] == 1.0
    assert faithful.loc[("a", "filler"), "accuracy"] == 0.0
    assert faithful.loc[("a", "none"), "accuracy"] == 0.0
    assert faithful.loc[("a", "swapped"), "source_trace_id"] == "b"
    assert faithful.loc[("a", "swapped"), "answers"] == ["42", "42"]
    unfaithful = filler_tests(sampler(ScriptedModel(faithful=False)), traces, FillerConfig(samples=2)).to_pandas()
    assert (unfaithful[unfaithful.trace_id == "a"]["accuracy"] == 1.0).all()


def test_filler_has_the_thinking_length_and_partners_differ():
    def count(text: str) -> int:
        return len(text.split())

    text = filler_text(" ...", 50, 0, count)
    assert count(text) == 50
    assert len(filler_text(" ...", None, 10, None)) == 10
    traces = [make_trace("a"), make_trace("b", problem="other"), make_trace("c", problem="apples?")]
    partners = swap_partners(traces, seed=1)
    assert all(partners[t.id].problem != t.problem for t in traces if t.id in partners)
    assert swap_partners([make_trace("a")], seed=0) == {}


# ---------------------------------------------------------------------------------------------
# Inserted mistakes
# ---------------------------------------------------------------------------------------------


def test_mistakes_move_the_faithful_answer_exactly_when_the_last_number_changes():
    trace = make_trace(thinking="Tom has 12 apples and buys 3 more.\nSo 12 + 3 = 15.")
    rows = []
    for seed in range(6):
        result = inserted_mistakes(sampler(ScriptedModel()), [trace], MistakesConfig(sentences_per_trace=1, samples=2, seed=seed))
        rows.extend(result.sentences)
    for row in rows:
        assert row.sentence_index == 1 and row.clean_match_rate == 1.0
        last_changed = NUMBER.findall(row.corrupted)[-1] != "15"
        assert row.corrupted_match_rate == (0.0 if last_changed else 1.0)
        assert row.match_drop == (1.0 if last_changed else 0.0)
    assert any(NUMBER.findall(r.corrupted)[-1] != "15" for r in rows)  # the planted effect was exercised


def test_mistakes_do_not_move_an_unfaithful_model():
    result = inserted_mistakes(sampler(ScriptedModel(faithful=False)), [make_trace()], MistakesConfig(sentences_per_trace=2))
    assert len(result.sentences) == 2
    assert all(r.match_drop == 0.0 for r in result.sentences)
    (summary,) = result.traces
    assert summary.n_tested == 2 and summary.aoc == 0.0


# ---------------------------------------------------------------------------------------------
# Paraphrase
# ---------------------------------------------------------------------------------------------


def test_paraphrase_that_keeps_numbers_changes_nothing_and_one_that_drops_them_does():
    trace = make_trace()
    keep = paraphrase_test(sampler(ScriptedModel()), [trace], ParaphraseConfig(fractions=(1.0,)),
                           paraphraser=lambda t, text: text.upper())
    (row,) = keep.rows
    assert row.k == 4 and row.paraphrase == row.original.upper() and row.match_drop == 0.0
    drop = paraphrase_test(sampler(ScriptedModel()), [trace], ParaphraseConfig(fractions=(1.0,)),
                           paraphraser=lambda t, text: NUMBER.sub("some", text))
    assert drop.rows[0].original_match_rate == 1.0 and drop.rows[0].paraphrase_match_rate == 0.0


def test_the_model_paraphrases_by_default():
    model = ScriptedModel()
    result = paraphrase_test(sampler(model), [make_trace()], ParaphraseConfig(fractions=(0.5,)))
    (row,) = result.rows
    assert row.paraphrase.startswith("REWRITTEN: ") and row.paraphrase_ok
    assert prefix_counts(4, (0.5, 1.0)) == [2, 4] and prefix_counts(3, (0.1,)) == [1]


# ---------------------------------------------------------------------------------------------
# Resilience and CI++
# ---------------------------------------------------------------------------------------------


def test_content_that_always_comes_back_is_censored():
    config = ResilienceConfig(top_k=1, chains=2, max_rounds=3)
    result = resilience(sampler(ScriptedModel(restate=True)), [make_trace()], bag_of_words, config,
                        sentence_scores={"t1": [5.0, 1.0, 0.0, 0.0]})
    (row,) = result.rows
    assert row.sentence_index == 0 and row.selection == "importance" and row.importance == 5.0
    assert row.censored == 2 and row.rounds == [3, 3] and row.resilience == 3.0
    assert row.absent_n_answered == 0 and np.isnan(row.ci_pp_match)


def test_content_that_never_comes_back_takes_one_round_and_gets_ci_plus_plus():
    result = resilience(sampler(ScriptedModel()), [make_trace()], bag_of_words, ResilienceConfig(top_k=1, chains=2))
    (row,) = result.rows
    assert row.selection == "evenly_spaced" and row.sentence_index == 1
    assert row.rounds == [1, 1] and row.censored == 0
    # absent: thinking stops before "12 - 5 = 7" -> the last number is 12; kept: it is 7. Neither is 15.
    assert row.absent_answers == ["12", "12"] and row.kept_answers == ["7", "7"]
    assert row.ci_pp_match == 0.0 and row.ci_pp_kl > 0


def test_sentence_selection():
    evenly = select_sentences(5, 2, None)  # candidates 0..3 (not the last): centres of two halves
    assert [(i, how) for i, how, _ in evenly] == [(1, "evenly_spaced"), (3, "evenly_spaced")]
    assert all(np.isnan(score) for _, _, score in evenly)
    assert [i for i, _, _ in select_sentences(4, 2, [0.1, 0.9, 0.5, 3.0])] == [1, 2]  # the last is never chosen
    assert [i for i, _, _ in select_sentences(4, 1, [0.1, 0.9])] == [1]  # missing scores are never chosen
    with pytest.raises(Exception, match="importance scores"):
        select_sentences(2, 1, [1.0, 2.0, 3.0])
