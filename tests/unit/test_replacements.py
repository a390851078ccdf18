"""Counterfactual replacements for activation patching: files, rollouts, the Thought Anchors layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.methods.replacements import (
    pick_replacement,
    read_replacements,
    replacements_from_rollouts,
    thought_anchors_replacements,
)
from anchors.rollouts.base import Rollout
from anchors.traces.segment import split_sentences
from anchors.thought_anchors import load_thought_anchors


def test_reads_jsonl_and_json_lists(tmp_path: Path) -> None:
    lines = [{"trace_id": "a", "sentence": 1, "text": "Other."}, {"trace_id": "b", "sentence": 0, "text": "New."}]
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    as_list = tmp_path / "r.json"
    as_list.write_text(json.dumps(lines))
    assert read_replacements(jsonl) == read_replacements(as_list) == {"a": {1: "Other."}, "b": {0: "New."}}


@pytest.mark.parametrize(("content", "message"), [
    ('{"trace_id": "a", "sentence": -1, "text": "x"}', r"r.jsonl:1: field 'sentence'"),
    ('{"trace_id": "a", "sentence": 1}', r"r.jsonl:1: field 'text'"),
    ('{"trace_id": "a", "sentence": 1, "text": "x"}\n{"trace_id": "a", "sentence": 1, "text": "y"}', r"r.jsonl:2: a second replacement"),
    ("{oops", r"r.jsonl:1: invalid JSON"),
])
def test_bad_replacement_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(InputError, match=message):
        read_replacements(path)


def test_the_first_different_candidate_is_picked() -> None:
    assert pick_replacement("Let me add.", [" Let me add. ", "", "Let me multiply."]) == "Let me multiply."
    assert pick_replacement("Same.", ["Same."]) is None


def test_replacements_from_rollouts_take_each_first_sentence() -> None:
    def rollout(k: int, text: str, error: str | None = None) -> Rollout:
        return Rollout(key="t/2", index=k, seed=k, text=text, finish_reason="error" if error else "eos", error=error)

    sentences = ["A.", "B.", "So 2 + 2 = 4."]
    rollouts = {2: [rollout(0, "", "timeout"), rollout(1, "So 2 + 2 = 4. Done."), rollout(2, "Wait, 2 + 2 = 5. Hmm.")],
                1: [rollout(0, "B. And more.")]}
    assert replacements_from_rollouts(sentences, rollouts) == {2: "Wait, 2 + 2 = 5."}


def test_thought_anchors_resampled_sentences(ta_data: Path) -> None:
    trace = load_thought_anchors(ta_data)[0]
    sentences = [s.text for s in split_sentences(trace.thinking, mode="paper")]
    picked = thought_anchors_replacements(trace, sentences)
    assert len(picked) > 0.8 * len(sentences)
    assert all(picked[k].strip() != sentences[k].strip() for k in picked)
    stray = trace.model_copy(update={"metadata": {}})
    with pytest.raises(InputError, match="no chunks_resampled.json"):
        thought_anchors_replacements(stray, sentences)
