"""Digging labels out of what LLMs actually reply: JSON in prose, fences, other shapes, misspelt tags."""

from __future__ import annotations

import json

import pytest

from anchors.labels.llm import _Batch, extract_json, normalise_tag, parse_reply, reply_items, reply_schema, user_prompt
from anchors.traces.taxonomy import THOUGHT_ANCHORS


@pytest.mark.parametrize("text", [
    '{"sentences": [{"index": 0, "function_tags": ["plan_generation"]}]}',
    'Sure, here you go:\n```json\n{"sentences": [{"index": 0, "function_tags": ["plan_generation"]}]}\n```',
    'The labels are {"sentences": [{"index": 0, "function_tags": ["plan_generation"]}]} as requested.',
    '```\n{"sentences": [{"index": 0, "function_tags": ["plan_generation"]}]}```',
])
def test_extract_json_finds_the_object_wherever_it_is(text: str) -> None:
    assert extract_json(text) == {"sentences": [{"index": 0, "function_tags": ["plan_generation"]}]}


@pytest.mark.parametrize("text", ["", "I think sentence 0 is planning.", "{broken: json", "[]"])
def test_extract_json_returns_none_when_there_is_nothing_usable(text: str) -> None:
    assert extract_json(text) in (None, [])


@pytest.mark.parametrize(("raw", "tag"), [
    ("plan_generation", "plan_generation"),
    ("Plan Generation", "plan_generation"),
    ("plan-generation", "plan_generation"),
    ("6. self_checking", "self_checking"),
    ("computation", "active_computation"),
    ("uncertainty", "uncertainty_management"),
    ("final", "final_answer_emission"),
    ("vibes", None),
    ("", None),
    (3, None),
])
def test_normalise_tag(raw: object, tag: str | None) -> None:
    assert normalise_tag(raw, THOUGHT_ANCHORS) == tag


def test_reply_items_accepts_keyed_objects_and_bare_lists() -> None:
    assert reply_items({"4": ["fact_retrieval"], "5": {"tags": ["plan_generation"]}}, [4, 5]) == [
        {"function_tags": ["fact_retrieval"], "index": 4}, {"tags": ["plan_generation"], "index": 5}]
    assert reply_items([["a"], ["b"]], [7, 8]) == [{"index": 7, "function_tags": ["a"]}, {"index": 8, "function_tags": ["b"]}]
    assert reply_items({"note": "nothing here"}, [0]) is None


def test_bare_list_of_the_wrong_length_is_not_matched_by_position() -> None:
    batch = _Batch([0, 1, 2])
    reason = parse_reply(json.dumps([["plan_generation"], ["fact_retrieval"]]), [0, 1, 2], THOUGHT_ANCHORS, batch)
    assert batch.found == {} and "3 sentence(s) missing" in reason


def test_parse_reply_ignores_indices_outside_the_batch_and_duplicates() -> None:
    reply = {"sentences": [{"index": 5, "function_tags": ["plan_generation"]},
                           {"index": 5, "function_tags": ["fact_retrieval"]},
                           {"index": 99, "function_tags": ["fact_retrieval"]}]}
    batch = _Batch([5, 6])
    reason = parse_reply(json.dumps(reply), [5, 6], THOUGHT_ANCHORS, batch)
    assert batch.found == {5: (("plan_generation",), ())} and "[6]" in reason


def test_schema_lists_only_the_taxonomys_tags_and_the_asked_indices() -> None:
    schema = reply_schema(THOUGHT_ANCHORS, [3, 4])
    item = schema["properties"]["sentences"]["items"]
    assert item["properties"]["function_tags"]["items"]["enum"] == list(THOUGHT_ANCHORS.names)
    assert item["properties"]["index"]["enum"] == [3, 4]
    assert schema["properties"]["sentences"]["minItems"] == schema["properties"]["sentences"]["maxItems"] == 2


def test_user_prompt_numbers_sentences_with_their_trace_indices() -> None:
    texts = [f"s{i}" for i in range(6)]
    prompt = user_prompt(texts, "What is 2+2?", [3, 4, 5], context=2)
    assert prompt.startswith("PROBLEM:\nWhat is 2+2?")
    assert "[1] s1\n[2] s2" in prompt and "[0] s0" not in prompt
    assert prompt.split("SENTENCES TO LABEL:\n")[1].startswith("[3] s3\n[4] s4\n[5] s5")
