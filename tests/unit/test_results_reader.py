"""Reading a per-trace result folder: the documented layout, aliases, and bad input turned into notes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anchors.errors import InputError
from anchors.results.trace import find_trace_dirs, read_results, read_trace_results
from anchors.report.writer import write_trace_results
from anchors.report.synthetic import synthetic_results


def test_round_trip_through_the_folder_layout(tmp_path: Path) -> None:
    original = synthetic_results(12, n_rollouts=3, trace_id="t1")
    folder = write_trace_results(original, tmp_path / "t1")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["scores.csv", "matrix.npz", "suppression.npz", "receivers.npz", "early_answering.csv", "alternatives.json", "trace.json"])
    back = read_trace_results(folder)
    assert back.notes == ()
    assert back.trace_id == "t1" and back.n_sentences == 12
    assert back.texts() == original.texts() and back.tags() == original.tags()
    np.testing.assert_allclose(back.sentences["counterfactual_importance_kl"], original.sentences["counterfactual_importance_kl"])
    lo, hi = back.interval("counterfactual_importance_kl")
    np.testing.assert_allclose(lo, original.sentences["counterfactual_importance_kl_lo"])
    np.testing.assert_array_equal(np.isnan(back.matrices["resampling"]), np.isnan(original.matrices["resampling"]))
    assert back.receiver_heads == original.receiver_heads and back.vertical_scores.shape == (6, 4, 12)
    assert back.alternatives[0] == list(original.alternatives[0])
    assert "n_rollouts" not in back.metrics and "counterfactual_importance_kl_lo" not in back.metrics
    assert back.headline_metric == "counterfactual_importance_kl"


def test_every_missing_file_is_a_note_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    pd.DataFrame({"index": [0, 1], "text": ["a.", "b."], "resampling_importance_kl": [0.1, 0.0]}).to_csv(tmp_path / "t" / "scores.csv", index=False)
    result = read_trace_results(tmp_path / "t")
    joined = " | ".join(result.notes)
    for missing in ("matrix.npz", "suppression.npz", "receivers.npz", "alternatives.json"):
        assert missing in joined
    assert result.headline_metric == "resampling_importance_kl" and result.tags() == [None, None]


def test_no_scores_at_all_still_reads(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"model": "m"}))
    result = read_trace_results(tmp_path)
    assert result.n_sentences == 0 and result.headline_metric is None
    assert any("no scores table" in n for n in result.notes) and any("no sentences" in n for n in result.notes)
    assert result.info["run"] == {"model": "m"}


def test_aliases_tags_from_lists_and_side_files(tmp_path: Path) -> None:
    rows = [{"chunk_idx": 1, "function_tags": ["fact_retrieval", "x"], "m": 2.0}, {"chunk_idx": 0, "function_tags": [], "m": 1.0}]
    (tmp_path / "scores.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    (tmp_path / "sentences.jsonl").write_text(json.dumps({"index": 0, "text": "zero"}) + "\n" + json.dumps({"index": 1, "text": "one"}) + "\n")
    result = read_trace_results(tmp_path)
    assert list(result.sentences["index"]) == [0, 1] and result.texts() == ["zero", "one"]
    assert result.tags() == [None, "fact_retrieval"]
    assert any("1 line(s) are not valid JSON" in n for n in result.notes)


def test_tags_from_a_tags_file_and_csv_semicolon_lists(tmp_path: Path) -> None:
    pd.DataFrame({"index": [0, 1], "text": ["a", "b"], "m": [1.0, 2.0]}).to_csv(tmp_path / "scores.csv", index=False)
    (tmp_path / "tags.jsonl").write_text(json.dumps({"index": 1, "tags": ["plan_generation"], "depends_on": ["0"]}) + "\n")
    result = read_trace_results(tmp_path)
    assert result.tags() == [None, "plan_generation"] and result.sentences["depends_on"].iloc[1] == ["0"]
    pd.DataFrame({"index": [0], "text": ["a"], "tags": ["self_checking;plan_generation"]}).to_csv(tmp_path / "scores.csv", index=False)
    assert read_trace_results(tmp_path).tags() == ["self_checking"]


def test_wrong_shapes_corrupt_files_and_pickles_are_left_out_with_notes(tmp_path: Path) -> None:
    pd.DataFrame({"index": [0, 1, 2], "text": ["a", "b", "c"], "m": [1.0, np.nan, 0.5]}).to_csv(tmp_path / "scores.csv", index=False)
    np.savez(tmp_path / "matrix.npz", matrix=np.zeros((2, 2)))
    (tmp_path / "suppression.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "receivers.npz", kurtosis=np.array([object()], dtype=object))  # needs pickle to load
    (tmp_path / "alternatives.json").write_text("[1, 2]")
    (tmp_path / "early_answering.csv").write_text("x,y\n1,2\n")
    result = read_trace_results(tmp_path)
    joined = " | ".join(result.notes)
    assert "must be a [3, 3] array" in joined and "suppression.npz: cannot read" in joined
    assert "receivers.npz: cannot read" in joined and "alternatives.json: expected an object" in joined
    assert "needs columns 'fraction' and 'agreement'" in joined
    assert "m: NaN for 1 of 3 sentence(s)" in joined
    assert result.matrices == {} and result.head_scores is None and result.early_answering is None


def test_single_sentence_trace_gets_a_note(tmp_path: Path) -> None:
    pd.DataFrame({"index": [0], "text": ["only"], "m": [0.0]}).to_csv(tmp_path / "scores.csv", index=False)
    assert any("single sentence" in n for n in read_trace_results(tmp_path).notes)


def test_finding_trace_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        find_trace_dirs(tmp_path / "nope")
    with pytest.raises(InputError, match="no trace result folders"):
        find_trace_dirs(tmp_path)
    for name in ("b", "a"):
        write_trace_results(synthetic_results(3, trace_id=name), tmp_path / name)
    (tmp_path / "empty").mkdir()
    assert [r.trace_id for r in read_results(tmp_path)] == ["a", "b"]
    assert find_trace_dirs(tmp_path / "a") == [tmp_path / "a"]


def test_the_authors_folder_reads_as_trace_results(ta_data: Path) -> None:
    from anchors.report.ta import ta_trace_results

    folder = ta_data / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_330"
    result = ta_trace_results(folder, ta_data, alternatives=3)
    chunks = json.loads((folder / "chunks_labeled.json").read_text())
    assert result.texts() == [c["chunk"] for c in chunks]
    assert result.tags() == [c["function_tags"][0] for c in chunks]
    steps = json.loads((folder / "step_importance.json").read_text())
    first = steps[0]["target_impacts"][0]
    assert result.matrices["resampling"][steps[0]["source_chunk_idx"], first["target_chunk_idx"]] == first["importance_score"]
    assert np.isnan(result.matrices["resampling"][5, 2])  # only source < target exists
    assert set(result.matrices) == {"resampling", "suppression"} and len(result.alternatives[0]) == 3
    assert result.info["gold_answer"] == "88572"
