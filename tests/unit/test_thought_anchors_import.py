"""Importing traces from the Thought Anchors folder layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.thought_anchors import FolderReader, ProblemFolder, load_thought_anchors


def make_problem(folder: Path, solution: str = "Think. More.\n</think>\n\nSo \\boxed{4}.") -> Path:
    folder.mkdir(parents=True)
    (folder / "problem.json").write_text(json.dumps({"problem": "2+2?", "gt_answer": 4, "level": "Level 1"}))
    base = {"prompt": "P <think>\n", "solution": solution, "answer": "4", "is_correct": True}
    (folder / "base_solution.json").write_text(json.dumps(base))
    return folder


def test_nested_folders_get_path_ids_and_split_text(tmp_path: Path) -> None:
    make_problem(tmp_path / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_7")
    (trace,) = load_thought_anchors(tmp_path)
    assert trace.id == "deepseek-r1-distill-qwen-14b--correct_base_solution--problem_7"
    assert trace.thinking == "Think. More.\n" and trace.answer_text == "\n\nSo \\boxed{4}."
    assert trace.gold_answer == "4" and trace.model == "deepseek-r1-distill-qwen-14b"
    assert trace.metadata["is_correct"] is True and trace.metadata["level"] == "Level 1"


def test_a_problem_folder_itself_is_accepted(tmp_path: Path) -> None:
    folder = make_problem(tmp_path / "problem_3")
    assert [t.id for t in load_thought_anchors(folder)] == ["problem_3"]
    assert not ProblemFolder(folder, tmp_path).has_chunks()


def test_folder_without_problems_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no problem folders found"):
        load_thought_anchors(tmp_path)


def test_broken_json_skips_that_trace_and_names_the_file(tmp_path: Path) -> None:
    folder = make_problem(tmp_path / "problem_1")
    make_problem(tmp_path / "problem_2")
    (folder / "base_solution.json").write_text('{"solution": "Think.')
    seen = []
    reader = FolderReader(tmp_path, on_skip=seen.append)
    assert [t.id for t in load_thought_anchors(tmp_path, reader)] == ["problem_2"]
    assert [s.trace_id for s in seen] == ["problem_1"] and "base_solution.json: truncated" in seen[0].reason
    assert reader.summary("read") == "1 of 2 trace(s) read; 1 skipped: problem_1"
    with pytest.warns(UserWarning, match="problem_1: .*base_solution.json: truncated"):
        assert len(load_thought_anchors(tmp_path)) == 1


def test_real_data_imports(ta_data: Path) -> None:
    traces = load_thought_anchors(ta_data)
    assert len(traces) == 20 and len({t.id for t in traces}) == 20
    assert all(t.prompt and t.prompt.endswith("<think>\n") and "</think>" not in t.thinking for t in traces)
