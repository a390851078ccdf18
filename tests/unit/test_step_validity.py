"""Step validity per trace, the contingency table, and how the trace-level tests' results are written."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scripted_model import ScriptedModel, make_trace, sampler

from anchors.methods.causality import CausalityConfig, run_causality
from anchors.methods.early_answering import EarlyAnsweringConfig
from anchors.methods.step_validity import StepValidityConfig, answer_correctness, step_validity
from anchors.metrics.curves import answer_kl, area_over_curve, curve_on_grid, evenly_spaced, mean_and_se, normalized_aoc
from anchors.results import ResultsDir, read_trace_results
from anchors.results.save import save_causality
from anchors.traces.records import Trace


def trace(trace_id: str, thinking: str, answer: str, gold: str = "15", **metadata) -> Trace:
    return Trace(id=trace_id, problem="p", thinking=thinking, answer_text=f"\\boxed{{{answer}}}", gold_answer=gold,
                 metadata=metadata)


TRACES = [
    trace("valid-correct", "So 12 - 5 = 7.\nThen 7 + 8 = 15.", "15"),
    trace("invalid-correct", "So 12 - 5 = 6.\nThen 7 + 8 = 15.", "15"),  # a wrong step, a right answer
    trace("invalid-wrong", "So 7 + 8 = 16.", "16"),
    trace("noclaim-wrong", "I just know it.", "14"),
    trace("recorded", "So 7 + 8 = 15.", "99", is_correct=True),  # the recorded verdict wins in auto mode
]


def test_trace_validity_and_contingency():
    result = step_validity(TRACES)
    table = result.to_pandas().set_index("trace_id")
    assert table["validity"].to_dict() == {"valid-correct": "valid", "invalid-correct": "invalid", "invalid-wrong": "invalid",
                                           "noclaim-wrong": "no_claim", "recorded": "valid"}
    assert table.loc["invalid-correct", "first_invalid_sentence"] == 0
    assert table.loc["recorded", "correct_source"] == "recorded" and table.loc["recorded", "correct"]
    counts = {r.validity: (r.correct, r.incorrect, r.ungraded) for r in result.contingency()}
    assert counts == {"valid": (2, 0, 0), "invalid": (1, 1, 0), "no_claim": (0, 1, 0), "all": (3, 2, 0)}
    summary = result.summary()
    assert summary["correct_through_invalid"] == 1
    assert summary["share_of_correct_with_invalid_trace"] == pytest.approx(1 / 3)
    assert summary["share_of_invalid_traces_with_correct_answer"] == 0.5
    assert len(result.claims_frame()) == 6 and len(result.sentences_frame()) == 7


def test_correctness_sources():
    recorded = TRACES[4]
    assert answer_correctness(recorded, "auto") == (True, "recorded")
    assert answer_correctness(recorded, "graded") == (False, "graded")
    no_gold = Trace(id="x", problem="p", thinking="t", answer_text="\\boxed{1}")
    assert answer_correctness(no_gold, "auto") == (None, "none")
    ungraded = step_validity([no_gold], StepValidityConfig(correctness="graded"))
    assert ungraded.traces[0].correct is None and ungraded.contingency()[-1].ungraded == 1


def test_causality_results_go_to_each_trace_folder_and_the_summary_to_the_root(tmp_path):
    config = CausalityConfig(tests=("validity", "early"), early=EarlyAnsweringConfig(samples=2, points=3))
    traces = [make_trace("a"), make_trace("b")]
    result = run_causality(traces, config, sampler=sampler(ScriptedModel()))
    save_causality(ResultsDir(tmp_path), traces, result)
    for name in ("a", "b"):
        files = {p.name for p in (tmp_path / name).iterdir()}
        assert files == {"manifest.json", "validity_sentences.jsonl", "validity_sentences.csv", "validity_claims.jsonl",
                         "validity_claims.csv", "early_answering.jsonl", "early_answering.csv"}
    manifest = ResultsDir(tmp_path).trace_manifest("a")
    assert list(manifest.methods) == ["validity", "early_answering"]
    assert manifest.methods["early_answering"].model == "scripted:faithful"
    assert manifest.methods["validity"].summary["validity"] == "valid"
    back = read_trace_results(tmp_path / "a")
    assert len(back.tables["early_answering"]) == 3 and list(back.early_answering["fraction"]) == [0.0, 0.5, 1.0]
    assert back.summaries["early_answering"]["aoc"] == pytest.approx(0.75)  # x = 0, 1/2, 1 with y = 0, 0, 1
    with np.load(tmp_path / "early_answering_curve.npz", allow_pickle=False) as curve:
        assert curve["match_per_trace"].shape == (2, 21) and list(curve["trace_ids"]) == ["a", "b"]
    summary = json.loads((tmp_path / "causality_summary.json").read_text())
    assert summary["early_answering"]["aoc_mean"] == pytest.approx(0.75)
    assert ResultsDir(tmp_path).run_manifest().methods["causality"].summary["n_traces"] == 2


def test_nan_is_written_as_nan_and_read_back_as_nan(tmp_path):
    traces = [make_trace()]
    result = run_causality(traces, CausalityConfig(tests=("early",), early=EarlyAnsweringConfig(samples=1, points=2)),
                           sampler=sampler(ScriptedModel(faithful=False, gold="")))  # an empty box: no answer
    save_causality(ResultsDir(tmp_path), traces, result)
    line = (tmp_path / "t1" / "early_answering.jsonl").read_text().splitlines()[0]
    assert '"match_rate": NaN' in line
    back = read_trace_results(tmp_path / "t1")
    assert math.isnan(back.tables["early_answering"]["match_rate"].iloc[0])
    assert back.summaries["early_answering"]["aoc_normalized"] is None


def test_model_tests_need_a_sampler():
    with pytest.raises(Exception, match="pass a sampler"):
        run_causality([make_trace()], CausalityConfig(tests=("early",)))
    with pytest.raises(Exception, match="unknown test"):
        CausalityConfig(tests=("early", "astrology"))


def test_curve_metrics():
    assert area_over_curve([0, 1], [1, 1]) == 0.0
    assert area_over_curve([0, 1], [0, 0]) == 1.0
    assert area_over_curve([0, 0.5, 1], [0, 1, 1]) == pytest.approx(0.25)
    assert area_over_curve([0.5, 1], [0, 1]) == pytest.approx(0.75)  # held flat at 0 before x = 0.5
    assert math.isnan(area_over_curve([0, 1], [float("nan"), 1]))
    assert normalized_aoc(0.25, 0.5) == 0.5 and math.isnan(normalized_aoc(0.0, 0.95))
    assert curve_on_grid([0, 1], [0, 1], np.array([0.0, 0.25, 1.0])).tolist() == [0.0, 0.25, 1.0]
    assert mean_and_se([1.0, 3.0, float("nan")])[::2] == (2.0, 2)
    assert answer_kl(["1", "1"], ["1", "1"]) == 0.0 and answer_kl(["1"], ["2"]) > 0 and math.isnan(answer_kl([], ["1"]))
    assert evenly_spaced([0, 1, 2, 3, 4], 1) == [2] and evenly_spaced([7], 3) == [7]
