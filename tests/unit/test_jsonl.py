"""Streaming JSONL validation: every bad line reported with its number, good lines still processed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchors.errors import InputError
from anchors.traces.jsonl import load_all, read_problems, read_traces, write_traces
from anchors.traces.records import Trace


def good(trace_id: str, **extra: object) -> dict[str, object]:
    return {"id": trace_id, "problem": "What is 2+2?", "thinking": "2 plus 2 is 4. So 4.", "answer_text": "\\boxed{4}", **extra}


def line(record: object) -> bytes:
    return json.dumps(record).encode() + b"\n"


# (bytes of one line, the field the message must name or None, a fragment of the message)
MALFORMED = {
    "invalid json": (b'{"id": "x", "problem": \n', None, "invalid JSON"),
    "missing field": (line({k: v for k, v in good("m").items() if k != "thinking"}), "thinking", "required field is missing"),
    "wrong type": (line(good("w", problem=5)), "problem", "valid string"),
    "empty thinking": (line(good("e", thinking="  \n")), "thinking", "thinking text is empty"),
    "no answer": (line(good("n", answer_text="")), "answer_text", "no final answer"),
    "invalid utf-8": (b'{"id": "u", "problem": "caf\xe9"}\n', None, "not valid UTF-8"),
    "huge line": (line(good("h", metadata={"blob": "x" * 5_000_000})), None, "over the"),
    "duplicate id": (line(good("ok-1")), "id", "duplicate id 'ok-1' (first used on line 1)"),
    "unknown field": (line(good("f", colour="red")), "colour", "unknown field"),
    "not an object": (line([good("a")]), None, "expected a JSON object"),
    "nan": (b'{"id": "nan", "problem": "p", "thinking": "t", "answer_text": "a", "gold_answer": NaN}\n', None, "NaN is not valid JSON"),
    "bad id": (line(good("../etc")), "id", "not a valid id"),
    "future schema": (line(good("s", schema_version=99)), "schema_version", "newer than this anchors"),
    "duplicate key": (b'{"id": "k", "id": "k2", "problem": "p", "thinking": "t", "answer_text": "a"}\n', None, "appears twice"),
    "nested wrong type": (line(good("t", sampling={"temperature": "hot"})), "sampling.temperature", "valid number"),
    # past ~1000 levels json.loads itself raises RecursionError: the depth limit turns it into one bad line
    "nested too deep": (b"[" * 1500 + b"]" * 1500 + b"\n", None, "JSON nested 1500 levels deep, over the limit of 100"),
    "float overflow": (b'{"id": "o", "problem": "p", "thinking": "t", "answer_text": "a", "metadata": {"x": 1e999}}\n',
                       None, "overflows a 64-bit float"),
    "lone surrogate": (b'{"id": "ls", "problem": "p", "thinking": "a \\ud800 b", "answer_text": "a"}\n', None, "unpaired UTF-16 surrogate"),
    "raw NUL": (b'{"id": "nul",\x00 "problem": "p"}\n', None, "NUL bytes"),
    "UTF-16": ('{"id": "u16"}'.encode("utf-16") + b"\n", None, "UTF-16 byte-order mark"),
}


@pytest.fixture()
def mixed_file(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.jsonl"
    with path.open("wb") as handle:
        handle.write(line(good("ok-1")))
        for raw, _, _ in MALFORMED.values():
            handle.write(raw)
        handle.write(b"\n")  # a blank line is not an error
        handle.write(b"\xef\xbb\xbf" + line(good("ok-bom")))
        handle.write(line(good("ok-2")))
    return path


def test_every_bad_line_reported_and_good_lines_processed(mixed_file: Path) -> None:
    reader = read_traces(mixed_file)
    ids = [trace.id for trace in reader]
    assert ids == ["ok-1", "ok-bom", "ok-2"]
    assert len(MALFORMED) >= 10
    errors = reader.errors
    assert [e.line for e in errors] == list(range(2, 2 + len(MALFORMED)))
    for error, (kind, (_, field, fragment)) in zip(errors, MALFORMED.items()):
        assert fragment in error.message, (kind, str(error))
        assert error.field == field, (kind, str(error))
        assert str(error).startswith(f"{mixed_file}:{error.line}: "), kind


def test_bom_is_a_warning_not_an_error(mixed_file: Path) -> None:
    reader = read_traces(mixed_file)
    list(reader)
    warnings = [p for p in reader.problems if p.severity == "warning"]
    assert len(warnings) == 1 and "byte-order mark" in str(warnings[0])
    assert warnings[0].line == len(MALFORMED) + 3


def test_message_format_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(line(good("x", thinking="")))
    reader = read_traces(path)
    assert list(reader) == []
    assert str(reader.errors[0]).startswith(f"{path}:1: field 'thinking': ")


def test_load_all_raises_with_every_bad_line(mixed_file: Path) -> None:
    with pytest.raises(InputError) as info:
        load_all(read_traces(mixed_file))
    assert f"{len(MALFORMED)} invalid line(s)" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_traces(tmp_path / "absent.jsonl")
    with pytest.raises(InputError, match="is a folder; give a JSONL file"):
        read_traces(tmp_path)


def test_nesting_below_the_limit_and_brackets_in_strings_are_fine(tmp_path: Path) -> None:
    deep = b'{"a": ' * 99 + b"1" + b"}" * 99  # with the record itself: 100 levels, the limit
    record = line(good("deep", thinking="[" * 5000 + " brackets in a string. 2 + 2 = 4.", metadata=0))
    path = tmp_path / "deep.jsonl"
    path.write_bytes(record.replace(b'"metadata": 0', b'"metadata": ' + deep))
    reader = read_traces(path)
    (trace,) = list(reader)
    assert not reader.problems and trace.thinking.startswith("[" * 5000)


def test_surrogate_pairs_are_text_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "emoji.jsonl"
    path.write_bytes(b'{"id": "e", "problem": "p", "thinking": "\\ud83d\\ude00 so 4.", "answer_text": "4"}\n')
    (trace,) = list(read_traces(path))
    assert trace.thinking == "\U0001f600 so 4."


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    traces = [Trace.model_validate(good(f"t{i}", thinking=f"Step {i}. Café ✓.\n\nDone.")) for i in range(3)]
    path = tmp_path / "out" / "traces.jsonl"
    assert write_traces(path, traces) == 3
    assert list(read_traces(path)) == traces
    assert not list(path.parent.glob("*.tmp"))


def test_problems_file_of_the_examples_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "problems.jsonl"
    problems = load_all(read_problems(path))
    assert len(problems) >= 40
    assert all(p.gold_answer for p in problems)
