"""The results contract: one folder layout every method writes and the report reads, a manifest per trace, conflicts
refused before any work, damaged files named, old folders refused with what to do."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anchors.errors import InputError
from anchors.report.synthetic import synthetic_results
from anchors.results import ResultsConflict, ResultsDir, read_results, read_trace_results, write_results
from anchors.results.contract import RUN_FILES, TRACE_FILES, RowsWriter, npz_writer
from anchors.traces.records import Trace

SRC = Path(__file__).resolve().parents[2] / "src" / "anchors"
TRACE = Trace(id="t1", problem="2 + 2?", thinking="First I add. Two plus two is four.", answer_text="\\boxed{4}",
              gold_answer="4")


def write_kind(out: ResultsDir, kind: str, settings: dict, trace: Trace = TRACE, mode: str = "default") -> Path:
    rows = [{"index": i, "value": float(i)} for i in range(2)]
    files = {"rows": RowsWriter(rows)} if "rows" in TRACE_FILES[kind] else {"arrays": npz_writer(x=np.zeros(2))}
    return out.write(kind, trace, mode, settings, "model-a", files)  # type: ignore[arg-type]


def test_a_synthetic_trace_round_trips(tmp_path: Path) -> None:
    original = synthetic_results(12, n_rollouts=3, trace_id="t1")
    folder = write_results(original, tmp_path)
    assert folder == tmp_path / "t1" and (tmp_path / "manifest.json").is_file()
    back = read_trace_results(folder)
    assert back.trace_id == "t1" and back.n_sentences == 12 and back.methods == ("table",) and back.damaged == ()
    assert back.texts() == original.texts() and back.tags() == original.tags()
    np.testing.assert_allclose(back.sentences["counterfactual_importance_kl"], original.sentences["counterfactual_importance_kl"])
    lo, _ = back.interval("counterfactual_importance_kl")
    np.testing.assert_allclose(lo, original.sentences["counterfactual_importance_kl_lo"])
    np.testing.assert_array_equal(np.isnan(back.matrices["resampling"]), np.isnan(original.matrices["resampling"]))
    assert back.receiver_heads == original.receiver_heads and back.vertical_scores.shape == (6, 4, 12)
    assert back.alternatives[0] == list(original.alternatives[0]) and back.early_answering is not None
    assert back.headline_metric == "counterfactual_importance_kl" and "n_rollouts" not in back.metrics


def test_methods_written_one_after_another_share_one_folder_and_manifest(tmp_path: Path) -> None:
    out = ResultsDir(tmp_path)
    write_kind(out, "filler", {"a": 1})
    write_kind(out, "suppression", {"b": 2})
    manifest = out.trace_manifest("t1")
    assert list(manifest.methods) == ["filler", "suppression"]
    assert manifest.methods["filler"].files == ["filler.jsonl"] and (tmp_path / "t1" / "filler.csv").is_file()
    assert [s.text for s in manifest.sentences] == ["First I add.", "Two plus two is four."]
    assert out.run_manifest().traces == ["t1"] and out.trace_dirs() == [tmp_path / "t1"]
    write_kind(out, "filler", {"a": 1})  # the same settings: replaced quietly


def test_conflicts_are_refused_unless_overwrite(tmp_path: Path) -> None:
    out = ResultsDir(tmp_path)
    write_kind(out, "filler", {"a": 1})
    with pytest.raises(ResultsConflict, match=r"filler results made with other settings \(a: 1 -> 2\); pass --overwrite"):
        out.check("filler", TRACE, "default", {"a": 2}, "model-a")
    with pytest.raises(ResultsConflict, match="model: 'model-a' -> 'model-b'"):
        out.check("filler", TRACE, "default", {"a": 1}, "model-b")
    with pytest.raises(ResultsConflict, match="split in default mode, this run asks for paper"):
        out.check("suppression", TRACE, "paper", {}, "model-a")
    with pytest.raises(ResultsConflict, match="holds another trace with the id 't1'"):
        out.check("suppression", TRACE.model_copy(update={"thinking": "Other."}), "default", {}, "model-a")
    write_kind(ResultsDir(tmp_path, overwrite=True), "filler", {"a": 2})
    assert ResultsDir(tmp_path).trace_manifest("t1").methods["filler"].settings == {"a": 2}


def test_a_damaged_file_is_a_named_note_and_a_damaged_manifest_skips_the_trace(tmp_path: Path) -> None:
    out = ResultsDir(tmp_path)
    write_kind(out, "filler", {})
    write_kind(out, "suppression", {}, trace=TRACE.model_copy(update={"id": "t2"}))
    (tmp_path / "t1" / "filler.jsonl").write_text('{"index": 0, "val')
    result = read_trace_results(tmp_path / "t1")
    assert len(result.damaged) == 1 and "filler.jsonl:1: not valid JSON" in result.damaged[0]
    (tmp_path / "t2" / "manifest.json").write_text("")
    skipped: list[str] = []
    assert [r.trace_id for r in read_results(tmp_path, on_skip=skipped.append)] == ["t1"]
    assert skipped and skipped[0].startswith("t2: ") and "manifest.json: cannot read" in skipped[0]


def test_a_results_root_with_run_level_files_is_not_a_trace_folder(tmp_path: Path) -> None:
    """Issue: receivers' run-level file at the root made `anchors report runs/c` take the root for a trace."""
    out = ResultsDir(tmp_path)
    write_kind(out, "filler", {})
    out.write_run("receiver_heads", {}, "m", {"arrays": npz_writer(mean_kurtosis=np.zeros((2, 2)))})
    assert out.trace_dirs() == [tmp_path / "t1"]
    assert [r.trace_id for r in read_results(tmp_path)] == ["t1"]


def test_folders_of_the_earlier_layout_are_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "old-trace").mkdir()
    (tmp_path / "old-trace" / "scores.jsonl").write_text("{}\n")
    (tmp_path / "old-trace" / "run.json").write_text("{}")
    with pytest.raises(InputError, match="written by an earlier anchors .* re-run the commands with --out into a new folder"):
        ResultsDir(tmp_path).trace_dirs()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no trace result folders found"):
        ResultsDir(tmp_path / "empty").trace_dirs()


def test_an_unwritable_out_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        ResultsDir(tmp_path / "file").check_writable()


def test_result_file_names_appear_in_one_module_only() -> None:
    names = {name for files in (*TRACE_FILES.values(), *RUN_FILES.values()) for name in files.values()}
    names |= {"manifest.json", "report.html", "index.html", "rollouts.sqlite"}
    found = {}
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in names:
            if re.search(rf"['\"/`]{re.escape(name)}['\"`]", text):
                found.setdefault(name, set()).add(str(path.relative_to(SRC)))
    home = {name: "rollouts/store.py" if name == "rollouts.sqlite" else "results/kinds.py" for name in names}
    outside = {name: modules for name, modules in found.items() if modules != {home[name]}}
    assert outside == {}, outside


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


def test_to_pandas_puts_the_sentence_and_headline_first(tmp_path: Path) -> None:
    results = synthetic_results(5, trace_id="t1")
    table = results.sentences.assign(schema_version=1, trace_id="t1")
    frame = replace(results, sentences=table[["schema_version", "trace_id", *results.sentences.columns]]).to_pandas()
    assert list(frame.columns[:4]) == ["index", "text", "tag", "counterfactual_importance_kl"]
    assert isinstance(pd.DataFrame(frame), pd.DataFrame)


def test_every_kind_has_a_reader_and_every_test_a_kind() -> None:
    from anchors.methods.causality.run import TESTS as RUNNABLE
    from anchors.results.kinds import KINDS, TESTS
    from anchors.results.read import _loader

    assert [kind for kind in KINDS if _loader(kind) is None] == []
    assert set(TESTS) == set(RUNNABLE)  # each test `anchors causality` runs is a kind the results folder knows


def test_a_table_kind_is_read_from_its_row_alone(tmp_path: Path) -> None:
    """A kind without a loader of its own is read by its row: its rows as a table, its columns into the sentence
    table (averaged per sentence), its summary."""
    from anchors.results.kinds import ResultKind
    from anchors.results.read import _Parts, _per_sentence
    from anchors.results.contract import read_trace_manifest

    rows = [{"sentence_index": 0, "drop": 0.5}, {"sentence_index": 0, "drop": 1.5}, {"sentence_index": 0, "drop": None}]
    ResultsDir(tmp_path).write("mistakes", TRACE, "default", {}, None, {"rows": RowsWriter(rows)}, summary={"mean": 1.0})
    manifest = read_trace_manifest(tmp_path / "t1")
    parts = _Parts(tmp_path / "t1", manifest)
    row = ResultKind("mistakes", {"rows": "mistakes.jsonl"}, "anchors causality --tests mistakes", columns={"drop": "my_drop"})
    _per_sentence(row)(parts, manifest.methods["mistakes"])
    assert parts.sentences["my_drop"].tolist()[0] == 1.0 and parts.sentences["my_drop"].isna().tolist() == [False, True]
    assert len(parts.fields["tables"]["mistakes"]) == 3 and parts.fields["summaries"]["mistakes"] == {"mean": 1.0}
