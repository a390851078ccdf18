"""Taxonomies as data: the built-in eight tags, colours, and loading other taxonomies from JSON files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.traces.taxonomy import TAG_COLOURS, THOUGHT_ANCHORS, UNKNOWN, UNKNOWN_COLOUR, Taxonomy, load_taxonomy

PAPER_TAGS = ["problem_setup", "plan_generation", "fact_retrieval", "active_computation", "uncertainty_management",
              "result_consolidation", "self_checking", "final_answer_emission"]


def test_built_in_taxonomy_has_the_papers_eight_tags_plus_unknown() -> None:
    assert list(THOUGHT_ANCHORS.names) == PAPER_TAGS
    assert THOUGHT_ANCHORS.labels[-1] == UNKNOWN and len(THOUGHT_ANCHORS.labels) == 9
    assert all(len(tag.definition) > 40 for tag in THOUGHT_ANCHORS.tags)
    assert load_taxonomy() is THOUGHT_ANCHORS and load_taxonomy("thought-anchors") is THOUGHT_ANCHORS


def test_palette_gives_every_label_a_distinct_hex_colour() -> None:
    assert set(TAG_COLOURS) == set(THOUGHT_ANCHORS.labels)
    assert all(re.fullmatch(r"#[0-9A-F]{6}", colour) for colour in TAG_COLOURS.values())
    assert len(set(TAG_COLOURS.values())) == len(TAG_COLOURS)


def test_taxonomy_round_trips_through_a_json_file(tmp_path: Path) -> None:
    data = {"name": "agentic", "description": "tool-using agents", "tags": [
        {"name": "tool_call", "definition": "Calls a tool.", "cues": ["Calling "]},
        {"name": "reflection", "definition": "Thinks about what happened.", "colour": "#123456"},
    ]}
    path = tmp_path / "agentic.json"
    path.write_text(json.dumps(data))
    taxonomy = load_taxonomy(path)
    assert taxonomy.names == ("tool_call", "reflection")
    assert taxonomy.spec("tool_call").cues == ("calling",)
    assert taxonomy.colours == {"tool_call": "#4C78A8", "reflection": "#123456", UNKNOWN: UNKNOWN_COLOUR}
    assert Taxonomy.from_dict(taxonomy.to_dict()) == taxonomy


def test_fingerprint_changes_when_a_definition_changes() -> None:
    data = THOUGHT_ANCHORS.to_dict()
    data["tags"][0]["definition"] += " Also headings."
    assert Taxonomy.from_dict(data).fingerprint() != THOUGHT_ANCHORS.fingerprint()


@pytest.mark.parametrize(("data", "message"), [
    ({"tags": [{"name": "a", "definition": "x"}]}, "field 'name'"),
    ({"name": "t", "tags": []}, "field 'tags'"),
    ({"name": "t", "tags": [{"name": "Bad Name", "definition": "x"}]}, "lower-case"),
    ({"name": "t", "tags": [{"name": "unknown", "definition": "x"}]}, "implicit"),
    ({"name": "t", "tags": [{"name": "a"}]}, r"tags\[0\]: field 'definition'"),
    ({"name": "t", "tags": [{"name": "a", "definition": "x"}, {"name": "a", "definition": "y"}]}, "listed twice"),
    ({"name": "t", "tags": [{"name": "a", "definition": "x", "colour": "red"}]}, "hex colour"),
    ({"name": "t", "tags": [{"name": "a", "definition": "x", "cues": "wait"}]}, "field 'cues'"),
])
def test_bad_taxonomy_files_name_the_file_and_field(tmp_path: Path, data: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=message) as error:
        load_taxonomy(path)
    assert str(path) in str(error.value)


def test_missing_or_unparsable_taxonomy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such taxonomy file"):
        load_taxonomy(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the taxonomy as JSON"):
        load_taxonomy(tmp_path / "broken.json")
