"""Streaming, validating JSONL reading and crash-safe writing of trace records.

Every bad line becomes one `LineProblem` (`FILE:LINE: field 'x': what is wrong`) while the good lines are
still yielded, so one typo never costs a whole file of traces.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar

from pydantic import ValidationError

from anchors.paths import atomic_write
from anchors.errors import InputError
from anchors.traces.records import TRACE_ID_PATTERN, Problem, Trace

# A 16k-token trace is ~70 KB of JSON; 2 MiB leaves 30x headroom and bounds memory on corrupt files.
DEFAULT_MAX_LINE_BYTES = 2 * 1024 * 1024
_BOM = "\ufeff"
# A trace record is 3-4 levels deep; free-form metadata rarely passes 10. Past ~1000 levels the json module
# (and pydantic, and writing the record back) hit Python's recursion limit, so deeper lines are rejected first.
MAX_JSON_DEPTH = 100
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
RecordT = TypeVar("RecordT", Trace, Problem)


@dataclass(frozen=True)
class LineProblem:
    """One problem found on one line of an input file."""

    path: str
    line: int
    message: str
    field: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: "
        what = f"field '{self.field}': " if self.field else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{where}{tag}{what}{self.message}"


class _LineRejected(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RecordReader(Generic[RecordT]):
    """Iterate the valid records of a JSONL file; `problems` fills up with every bad line met on the way."""

    def __init__(
        self, path: str | Path, model: type[RecordT], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.max_line_bytes = max_line_bytes
        self.problems: list[LineProblem] = []
        self._first_line_of_id: dict[str, int] = {}
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder; give a JSONL file (one JSON object per line), "
                             "or --from-ta DIR for a folder in the Thought Anchors layout")
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file (expected a JSONL file, one JSON object per line)")

    @property
    def errors(self) -> list[LineProblem]:
        return [p for p in self.problems if p.severity == "error"]

    def __iter__(self) -> Iterator[RecordT]:
        with self.path.open("rb") as handle:
            for number, raw in enumerate(_bounded_lines(handle, self.max_line_bytes), start=1):
                trace = self._parse_line(number, raw)
                if trace is not None:
                    yield trace

    def _parse_line(self, number: int, raw: bytes | int) -> RecordT | None:
        try:
            record = self._record_from(number, raw)
        except _LineRejected as rejected:
            self.problems.append(LineProblem(str(self.path), number, str(rejected), rejected.field))
            return None
        if record is not None:
            self._first_line_of_id.setdefault(record.id, number)
        return record

    def _record_from(self, number: int, raw: bytes | int) -> RecordT | None:
        text = self._decode(number, raw)
        if not text.strip():
            return None  # blank lines are allowed, e.g. a trailing newline
        record = _validate(self.model, _parse_json(text))
        first = self._first_line_of_id.get(record.id)
        if first is not None:
            raise _LineRejected(f"duplicate id {record.id!r} (first used on line {first}); ids must be unique", "id")
        return record

    def _decode(self, number: int, raw: bytes | int) -> str:
        if isinstance(raw, int):  # the line was skipped for its size
            raise _LineRejected(
                f"line is {raw / 1e6:.1f} MB, over the {self.max_line_bytes / 1e6:.1f} MB limit "
                "(a corrupt line? raise it with --max-line-bytes if the trace is real)"
            )
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _LineRejected("starts with a UTF-16 byte-order mark: re-save the file as UTF-8")
        if b"\x00" in raw:  # raw NUL bytes never occur in JSON text (inside strings they are written \u0000)
            raise _LineRejected("holds NUL bytes (a UTF-16 or binary file?): re-save the file as UTF-8 text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1].hex()
            raise _LineRejected(f"not valid UTF-8 (byte 0x{bad} at byte {exc.start + 1}); re-save the file as UTF-8") from None
        if text.startswith(_BOM):
            self.problems.append(
                LineProblem(str(self.path), number, "UTF-8 byte-order mark removed at the start of the line", severity="warning")
            )
            text = text[len(_BOM) :]
        return text


def _bounded_lines(handle: IO[bytes], limit: int) -> Iterator[bytes | int]:
    """Yield each line's bytes, or its byte count when it is over `limit` (read past without keeping it)."""
    while True:
        raw = handle.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while raw and not raw.endswith(b"\n"):
            raw = handle.readline(1 << 20)
            size += len(raw)
        yield size


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf, which no JSON writer can write back
        raise ValueError(f"the number {text[:20]} overflows a 64-bit float")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _nesting_depth(text: str) -> int:
    """How deeply the JSON text's arrays and objects nest (brackets inside strings don't count)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # cannot be too deep: skip the scan (every ordinary line)
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    # "\ud800" is valid JSON but no Unicode text: it could never be written back as UTF-8
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_nesting(text: str) -> None:
    """ValueError if the JSON text nests deeper than MAX_JSON_DEPTH: call before json.loads on user files (past
    ~1000 levels json.loads raises RecursionError, which says nothing about where)."""
    depth = _nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH} (a corrupt line?)")


def loads_checked(text: str, where: str, *, position: Literal["line", "column"] = "line") -> Any:
    """json.loads of a user's file (or one line of it: `position="column"`), its depth checked first; InputError
    naming `where` and the place in the text when it is not JSON."""
    try:
        check_nesting(text)
        return json.loads(text)
    except json.JSONDecodeError as exc:
        place = f"line {exc.lineno}" if position == "line" else f"column {exc.colno}"
        raise InputError(f"{where}: invalid JSON ({exc.msg}, {place})") from None
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def jsonl_values(path: Path) -> list[tuple[str, Any]]:
    """The JSON value of every non-blank line of a small JSONL input (importance scores, hand-written or
    replacement sentences), each with its "FILE:LINE" for messages; InputError naming the line when one is not JSON."""
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
    return [(f"{path}:{n}", loads_checked(line, f"{path}:{n}", position="column")) for n, line in lines if line.strip()]


def _parse_json(text: str) -> dict[str, Any]:
    try:
        check_nesting(text)
    except ValueError as exc:
        raise _LineRejected(str(exc)) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                           object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise _LineRejected(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:
        raise _LineRejected(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _LineRejected(f"expected a JSON object (one trace per line), got {type(value).__name__}")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise _LineRejected("a string holds an unpaired UTF-16 surrogate escape (e.g. \\ud800): not valid Unicode text")
    return value


def _validate(model: type[RecordT], record: dict[str, Any]) -> RecordT:
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''} on this line)" if more else ""
        raise _LineRejected(_explain(first) + suffix, field) from None


def _explain(error: dict[str, Any]) -> str:
    """Pydantic's message, rephrased where a user needs to know what to do."""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (free-form data belongs under 'metadata')"
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} is not a valid id: use letters, digits, '.', '_' or '-' (it names a result folder; pattern {TRACE_ID_PATTERN})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def read_traces(path: str | Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> RecordReader[Trace]:
    """Open a JSONL file of traces for streaming validation (see `RecordReader`)."""
    return RecordReader(path, Trace, max_line_bytes=max_line_bytes)


def read_problems(path: str | Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> RecordReader[Problem]:
    """Open a JSONL file of problems ({"id", "problem", "gold_answer"}) for streaming validation."""
    return RecordReader(path, Problem, max_line_bytes=max_line_bytes)


def load_all(reader: RecordReader[RecordT]) -> list[RecordT]:
    """Every record of a file, or InputError listing every bad line (for code that needs a clean file)."""
    records = list(reader)
    if reader.errors:
        listing = "\n".join(str(p) for p in reader.errors)
        raise InputError(f"{len(reader.errors)} invalid line(s) in {reader.path}:\n{listing}")
    return records


class TraceWriter:
    """Append traces to a JSONL file, flushed per record so an interrupted run keeps what it wrote."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, trace: Trace) -> None:
        self._handle.write(trace.to_json_line() + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any] | Trace]) -> int:
    """Write (replace) a JSONL file atomically: readers never see a half-written file. Returns the count."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with tmp.open("w", encoding="utf-8") as handle:
            for row in rows:
                text = row.to_json_line() if isinstance(row, Trace) else json.dumps(row, ensure_ascii=False)
                handle.write(text + "\n")
                count += 1

    atomic_write(path, write)
    return count


def write_traces(path: str | Path, traces: Iterable[Trace]) -> int:
    """Write (replace) a JSONL file of traces atomically. Returns the count."""
    return write_jsonl(path, traces)
