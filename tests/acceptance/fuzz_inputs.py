"""Malformed inputs for the fuzz suite (test_fuzz_cli.py): what a new user, a crashed job or a hostile file feeds
the CLI. Everything is generated here at test time; nothing comes from outside the repository except the
Thought Anchors folders, which are copied from the authors' data (when present) into a temporary folder.

A `FileCase` is a whole JSONL file: the two clean traces with malformed line(s) between them (or a transform of
the clean file, such as CRLF line ends). It says how many lines the reader must reject and which extra traces
are valid, so the test knows the exit code (1 when a line was skipped) and which outputs must equal those of the
clean file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Two short clean traces: one arithmetic claim each (the step-validity checker has something to check), a
# boxed answer, a gold answer. Short, so the tiny-model commands stay quick.
CLEAN = (
    {"id": "clean-a", "problem": "What is 3 times 4?", "thinking": "We need 3 times 4. 3 * 4 = 12. So the answer is 12.",
     "answer_text": "The answer is \\boxed{12}.", "gold_answer": "12"},
    {"id": "clean-b", "problem": "What is 10 minus 7?", "thinking": "Take 7 from 10. 10 - 7 = 3. The answer is 3.",
     "answer_text": "\\boxed{3}", "gold_answer": "3"},
)
CLEAN_IDS = tuple(t["id"] for t in CLEAN)


def record(trace_id: str = "odd", **fields: object) -> dict[str, object]:
    """A valid trace record with some fields replaced (a field set to ... is removed)."""
    base = {"id": trace_id, "problem": "What is 2 plus 2?", "thinking": "Two plus two is four. 2 + 2 = 4.",
            "answer_text": "\\boxed{4}", "gold_answer": "4"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def line(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def clean_lines() -> tuple[bytes, bytes]:
    return line(CLEAN[0]), line(CLEAN[1])


def clean_problem_lines() -> tuple[bytes, bytes]:
    """The clean traces' problems, as a problems file for `anchors generate --problems`."""
    return tuple(line({k: t[k] for k in ("id", "problem", "gold_answer")}) for t in CLEAN)  # type: ignore[return-value]


@dataclass(frozen=True)
class FileCase:
    name: str
    middle: tuple[bytes, ...] = ()  # lines put between the two clean traces
    rejected: int = 0  # lines the reader must report as errors
    valid: tuple[str, ...] = ()  # ids of extra valid traces among `middle`
    transform: Callable[[bytes], bytes] | None = None  # applied to the whole file instead
    keeps_clean: bool = True  # False: the clean traces cannot survive (the whole file is unreadable)
    message: str | None = None  # a piece of the expected per-line message
    heavy: bool = False  # huge or slow content: only for the commands that don't run a model on it

    def build(self, clean: tuple[bytes, bytes] | None = None) -> bytes:
        first, second = clean or clean_lines()
        body = b"\n".join([first, *self.middle, second]) + b"\n"
        return self.transform(body) if self.transform else body

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0

    @property
    def ids(self) -> tuple[str, ...]:
        return (CLEAN_IDS if self.keeps_clean else ()) + self.valid


def bad(name: str, *lines: bytes, message: str | None = None, heavy: bool = False) -> FileCase:
    return FileCase(name, tuple(lines), rejected=len(lines), message=message, heavy=heavy)


def odd(name: str, heavy: bool = False, **fields: object) -> FileCase:
    """A valid record with unusual content: it must be processed like any other."""
    trace_id = f"odd-{name}"
    return FileCase(name, (line(record(trace_id, **fields)),), valid=(trace_id,), heavy=heavy)


def _nest(depth: int) -> bytes:
    """An object nested `depth` levels deep, as JSON text (json.dumps itself would overflow the stack)."""
    return b'{"a": ' * depth + b"1" + b"}" * depth


def with_metadata(trace_id: str, raw: bytes) -> bytes:
    """A valid record whose metadata is the raw JSON text `raw`."""
    return line(record(trace_id, metadata=0)).replace(b'"metadata": 0', b'"metadata": ' + raw)


def _deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


SYMPY_BOMBS = {  # answers that make a symbolic grader hang or blow up: each must end in a grade, not a hang
    "power-tower": ("\\boxed{9^{9^{9^{9}}}}", "1"),
    "factorial": ("\\boxed{(10^{100})!}", "1"),
    "huge-integer": ("\\boxed{" + "9" * 100_000 + "}", "9"),
    "huge-integer-vs-fraction": ("\\boxed{" + "9" * 100_000 + "}", "\\frac{1}{2}"),
    "nested-parens": ("\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}", "1"),
    "nested-fracs": ("\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}", "2"),
    "python-power": ("\\boxed{9**9**9**9}", "1"),
    "huge-exponent": ("\\boxed{1e1000000000}", "1"),
    "unclosed-boxed": ("\\boxed{1", "1"),
}
MARKUP = "[/b] [bold]bold?[/bold] [/] [link=https://example.com]x[/link] [red on white]"


def trace_cases() -> list[FileCase]:
    """Malformed or unusual JSONL trace files (a name each; see FileCase)."""
    a, _ = clean_lines()
    return [
        # not JSON at all, or broken JSON
        bad("not-json", b"{broken", message="invalid JSON"),
        bad("truncated-record", a[: len(a) // 2], message="invalid JSON"),
        bad("trailing-garbage", a.replace(b'"clean-a"', b'"tg"') + b" trailing", message="invalid JSON"),
        bad("two-records-one-line", line(record("two-1")) + line(record("two-2")), message="invalid JSON"),
        bad("python-dict-repr", repr(record("repr")).encode(), message="invalid JSON"),
        bad("trailing-comma", b'{"id": "tc", "problem": "p",}', message="invalid JSON"),
        bad("comment-line", b"# traces exported 2026-11-01", message="invalid JSON"),
        bad("undefined", b'{"id": undefined}', message="invalid JSON"),
        # JSON, but not one object
        bad("json-array", line([record("arr")]), message="expected a JSON object"),
        bad("json-number", b"42", message="expected a JSON object"),
        bad("json-string", b'"a trace"', message="expected a JSON object"),
        bad("json-null", b"null", message="expected a JSON object"),
        bad("json-true", b"true", message="expected a JSON object"),
        bad("empty-object", b"{}", message="required field is missing"),
        # numbers JSON does not have, or Python cannot hold
        bad("nan", line(record("nan")).replace(b'"gold_answer": "4"', b'"gold_answer": NaN'), message="NaN"),
        bad("infinity", with_metadata("inf", b'{"x": Infinity}'), message="Infinity"),
        bad("minus-infinity", with_metadata("ninf", b'{"x": -Infinity}')),
        bad("float-overflow", with_metadata("ovf", b'{"x": 1e999}'), message="overflow"),
        bad("huge-int-literal", with_metadata("hint", b'{"x": ' + b"9" * 5000 + b"}")),
        # missing fields and wrong types
        *(bad(f"missing-{name}", line(record(f"m-{name}", **{name: ...})), message="required field is missing")
          for name in ("id", "problem", "thinking", "answer_text")),
        bad("id-is-int", line(record(7)), message="id"),
        bad("thinking-is-int", line(record("ti", thinking=12))),
        bad("thinking-is-bool", line(record("tb", thinking=True))),
        bad("answer-is-list", line(record("al", answer_text=["\\boxed{4}"]))),
        bad("problem-is-object", line(record("po", problem={"text": "2+2"}))),
        bad("gold-is-int", line(record("gi", gold_answer=4))),
        bad("prompt-is-number", line(record("pn", prompt=3.5))),
        bad("metadata-is-list", line(record("ml", metadata=[1, 2]))),
        bad("sampling-is-string", line(record("ss", sampling="temperature=0.6"))),
        bad("sampling-negative-temperature", line(record("st", sampling={"temperature": -1}))),
        bad("sampling-top-p-2", line(record("sp", sampling={"top_p": 2}))),
        bad("sampling-unknown-key", line(record("su", sampling={"temp": 0.6}))),
        bad("schema-version-string", line(record("sv", schema_version="one"))),
        bad("schema-version-from-the-future", line(record("sf", schema_version=99)), message="newer than this anchors"),
        bad("schema-version-zero", line(record("sz", schema_version=0))),
        bad("unknown-field", line(record("uf", thoughts="...")), message="unknown field"),
        # empty or blank text
        bad("empty-thinking", line(record("et", thinking="")), message="thinking text is empty"),
        bad("blank-thinking", line(record("bt", thinking=" \n\t \u00a0")), message="thinking text is empty"),
        bad("empty-answer", line(record("ea", answer_text="")), message="answer text is empty"),
        bad("blank-answer", line(record("ba", answer_text="\n\n  ")), message="answer text is empty"),
        bad("empty-problem", line(record("ep", problem=""))),
        bad("empty-id", line(record(""))),
        # ids that are not safe folder names (they name result folders)
        *(bad(f"id-{name}", line(record(bad_id)), message="not a valid id") for name, bad_id in {
            "parent-dir": "../evil", "absolute": "/etc/passwd", "slash": "a/b", "dot-dot": "..", "dot": ".",
            "leading-space": " a", "nul": "a\x00b", "newline": "a\nb", "backslash": "a\\b", "too-long": "x" * 201,
            "unicode": "\u00fcber", "leading-dash": "-rf", "markup": "[/b]",
        }.items()),
        # the same id twice, the same key twice
        bad("duplicate-id", line(record(CLEAN_IDS[0])), message="duplicate id"),
        bad("duplicate-key", b'{"id": "dk", "id": "dk2", "problem": "p", "thinking": "t.", "answer_text": "a"}',
            message="appears twice"),
        # size and encoding
        bad("huge-line", line(record("huge", thinking="word " * 450_000)), message="MB limit", heavy=True),
        bad("invalid-utf8", line(record("iu")).replace(b"Two plus", b"Two \xff\xfe plus"), message="not valid UTF-8"),
        bad("latin-1", line(record("l1", thinking="caf\u00e9 au lait. 2 + 2 = 4.")).replace("é".encode(), b"\xe9"),
            message="not valid UTF-8"),
        bad("raw-nul-between-tokens", line(record("rn")).replace(b", ", b",\x00 ", 1), message="NUL bytes"),
        bad("raw-control-in-string", line(record("rc")).replace(b"Two plus", b"Two\x07 plus"), message="invalid JSON"),
        bad("lone-surrogate", line(record("ls")).replace(b"Two plus", b"Two \\ud800 plus"), message="surrogate"),
        # nesting: past the limit is one bad line, not a crash; below it is fine
        bad("deep-array-1500", _deep_array(1500), message="nested"),
        bad("deep-array-unclosed", b"[" * 2000, message="nested"),
        bad("deep-metadata-1500", with_metadata("dm", _nest(1500)), message="nested"),
        bad("deep-metadata-101", with_metadata("d101", _nest(100)), message="nested"),
        bad("markup-in-unknown-field", line(record("mf", **{"[/b]": 1})), message="unknown field"),
        # unusual but valid content: processed like any other trace
        FileCase("deep-metadata-50", (with_metadata("odd-deep-50", _nest(50)),), valid=("odd-deep-50",)),
        odd("brackets-in-string", thinking="[" * 1500 + " is a lot of brackets. 2 + 2 = 4."),
        odd("markup-everywhere", problem=MARKUP, thinking=f"Look at {MARKUP}. Then [/i] again. 2 + 2 = 4.",
            answer_text="\\boxed{[/i]}", gold_answer="[/b]"),
        odd("escaped-nul", thinking="Two\u0000plus two. 2 + 2 = 4.", answer_text="\\boxed{4}\u0000"),
        odd("ansi-escapes", thinking="\u001b[31mred\u001b[0m text. \u001b[2J 2 + 2 = 4."),
        odd("control-chars", thinking="Bell\u0007 back\u0008space form\u000cfeed. 2 + 2 = 4."),
        odd("bidi-and-zero-width", thinking="\u202eevil\u202c and zero\u200bwidth\ufeff. 2 + 2 = 4."),
        odd("emoji-and-cjk", thinking="\U0001f914 Let me think \u2014 \u56db. 2 + 2 = 4.", answer_text="\\boxed{4} \U0001f389"),
        odd("surrogate-pair", thinking="An emoji \U0001f600 here. 2 + 2 = 4."),
        odd("think-tags-inside", thinking="<think> nested </think> tags. 2 + 2 = 4."),
        odd("only-punctuation", thinking="... !!! ??? ;;;"),
        odd("one-word", thinking="4"),
        odd("no-gold", gold_answer=...),
        odd("no-answer-in-text", answer_text="I am not sure."),
        odd("windows-newlines-inside", thinking="First.\r\nSecond.\r\n2 + 2 = 4."),
        odd("long-sentence", thinking="and " * 50_000 + "so 4.", heavy=True),
        odd("many-sentences", thinking=" ".join(f"Step {i}." for i in range(400)), heavy=True),
        *(odd(f"sympy-{name}", answer_text=answer, gold_answer=gold) for name, (answer, gold) in SYMPY_BOMBS.items()),
        # whole-file shapes
        FileCase("blank-lines", (b"", b"   ", b"\t", b"")),
        FileCase("crlf-line-ends", transform=lambda body: body.replace(b"\n", b"\r\n")),
        FileCase("bom-at-start", transform=lambda body: b"\xef\xbb\xbf" + body),
        FileCase("bom-mid-file", (b"\xef\xbb\xbf" + line(record("bom-mid")),), valid=("bom-mid",)),
        FileCase("no-final-newline", transform=lambda body: body.rstrip(b"\n")),
        FileCase("cr-only-line-ends", transform=lambda body: body.replace(b"\n", b"\r"), rejected=1, keeps_clean=False),
        FileCase("utf-16", transform=lambda body: body.decode().encode("utf-16"), rejected=3, keeps_clean=False),
        FileCase("gzip-bytes", transform=_gzip, rejected=1, keeps_clean=False),
    ]


def _gzip(body: bytes) -> bytes:
    import gzip

    return gzip.compress(body, mtime=0).replace(b"\n", b"")  # one line of binary


def problem_cases() -> list[FileCase]:
    """Malformed problem files for `anchors generate --problems` (lines of {"id", "problem", "gold_answer"})."""
    def p(pid: object, **fields: object) -> bytes:
        base = {"id": pid, "problem": "What is 1 plus 1?", "gold_answer": "2", **fields}
        return line({k: v for k, v in base.items() if v is not ...})

    return [
        FileCase("all-bad-problems", (
            b"{broken", b"[1, 2]", b"null", p("np", problem=...), p("ep", problem=""), p(5), p("../x"),
            p("ui", thinking="?"), p("long-" + "x" * 300), p("nan").replace(b'"2"', b"NaN"),
            _deep_array(1500), b"\xff\xfe", p(CLEAN_IDS[0])), rejected=13),
    ]


# --- Thought Anchors folders ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FolderCase:
    """A damage done to one file of the second of two problem folders (the first stays good)."""

    name: str
    file: str  # the file damaged (a command that never reads it must not notice)
    damage: Callable[[Path], None]
    valid: bool = False  # unusual but valid: the folder is processed like the good one
    trace_only: bool = False  # breaks only the trace built from the folder (a command that builds none won't notice)
    hides_folder: bool = False  # the folder no longer looks like a problem folder: every command must say so


def _edit_json(change: Callable[[object], object]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.write_text(json.dumps(change(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")

    return damage


def _set(key: str, value: object) -> Callable[[Path], None]:
    def change(data: object) -> object:
        assert isinstance(data, dict)
        return {**data, key: value} if value is not ... else {k: v for k, v in data.items() if k != key}

    return _edit_json(change)


def _write(payload: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(payload)


def _no_think_close(data: object) -> object:
    assert isinstance(data, dict)
    return {**data, "solution": data["solution"].replace("</think>", ""), "full_cot": data["full_cot"].replace("</think>", "")}


def _into_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _chunk_field(key: str, value: object) -> Callable[[Path], None]:
    return _edit_json(lambda chunks: [{**c, key: value} for c in chunks])  # type: ignore[union-attr]


def _latin_1_byte(path: Path) -> None:
    # the authors escape non-ASCII in their JSON (as \u00e9): put in a raw latin-1 byte, as a latin-1 editor would
    path.write_bytes(path.read_bytes().replace(b"\\n", b"\xe9", 1))


DEEP = b"[" * 5000 + b"]" * 5000
BASE, PROBLEM, LABELED, RESAMPLED = "base_solution.json", "problem.json", "chunks_labeled.json", "chunks_resampled.json"


def folder_cases() -> list[FolderCase]:
    return [
        FolderCase("base-solution-no-think-close", BASE, _edit_json(_no_think_close), trace_only=True),
        FolderCase("solution-is-int", BASE, _set("solution", 42)),
        FolderCase("solution-missing", BASE, _set("solution", ...)),
        FolderCase("solution-empty", BASE, _set("solution", ""), trace_only=True),
        FolderCase("base-solution-invalid-json", BASE, _write(b'{"prompt": "x", "solution": ')),
        FolderCase("base-solution-empty-file", BASE, _write(b"")),
        FolderCase("base-solution-is-a-list", BASE, _write(b"[1, 2, 3]")),
        FolderCase("base-solution-deep", BASE, _write(DEEP)),
        FolderCase("base-solution-bom", BASE, lambda path: path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())),
        FolderCase("base-solution-latin-1", BASE, _latin_1_byte),
        FolderCase("problem-invalid-json", PROBLEM, _write(b"{not json")),
        FolderCase("problem-text-is-int", PROBLEM, _set("problem", 7)),
        FolderCase("problem-is-a-folder", PROBLEM, _into_folder, hides_folder=True),
        FolderCase("gt-answer-is-list", PROBLEM, _set("gt_answer", [1, 2])),
        FolderCase("markup-in-problem", PROBLEM, _set("problem", MARKUP), valid=True),
        FolderCase("gt-answer-is-int", PROBLEM, _set("gt_answer", 12), valid=True),
        FolderCase("chunks-labeled-not-a-list", LABELED, _write(b'{"chunk": "x"}')),
        FolderCase("chunks-labeled-invalid-json", LABELED, _write(b"[{")),
        FolderCase("chunks-labeled-deep", LABELED, _write(DEEP)),
        FolderCase("chunks-labeled-tags-are-int", LABELED, _chunk_field("function_tags", 3)),
        FolderCase("chunks-labeled-chunk-is-null", LABELED, _chunk_field("chunk", None)),
        FolderCase("chunks-labeled-kl-is-string", LABELED, _chunk_field("counterfactual_importance_kl", "high")),
        FolderCase("chunks-resampled-truncated", RESAMPLED, lambda path: path.write_bytes(path.read_bytes()[:500])),
        FolderCase("chunks-resampled-deep", RESAMPLED, _write(DEEP)),
        FolderCase("chunks-resampled-not-an-object", RESAMPLED, _write(b'["x", "y"]')),
        FolderCase("chunks-resampled-int-sentences", RESAMPLED, _edit_json(lambda d: {k: [7] for k in d})),  # type: ignore[union-attr]
    ]


def ta_fixture(source: Path, target: Path) -> Path:
    """Two problem folders (the smallest) copied from the authors' data into `target/model-x/problem_{0,1}`,
    resampled chunks cut to 3 per sentence so the commands that embed them stay quick."""
    folders = sorted(source.rglob("base_solution.json"), key=lambda p: (_size(p.parent), str(p)))[:2]  # the smallest
    for k, base in enumerate(folders):
        folder = target / "model-x" / f"problem_{k}"
        folder.mkdir(parents=True)
        for item in base.parent.iterdir():
            shutil.copyfile(item, folder / item.name)
        _shorten_resampled(folder / RESAMPLED)
    return target


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _shorten_resampled(path: Path) -> None:
    if path.is_file():  # {chunk index: [resampled sentence, ...]}
        chunks = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({k: v[:3] for k, v in chunks.items()}), encoding="utf-8")
