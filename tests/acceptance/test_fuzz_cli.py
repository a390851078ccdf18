"""The fuzz suite: malformed inputs (tests/acceptance/fuzz_inputs.py) through every command, in process.

Every case asserts three things: no traceback (no uncaught exception, and no "internal error" line, which is what
the CLI prints for an unexpected exception), the exit code (0 clean, 1 some records skipped, 2 fatal), and that the
valid records' outputs equal those of the clean file. Equal means equal: the clean and the malformed run process the
same valid traces on the same machine, in the same process, with the same seeds, so even the tiny-model outputs
repeat exactly (a same-seed rerun on one machine is bit-exact by design). `score` runs start from the clean run's
rollout store, so its comparison checks the scoring, not the sampling (tests/integration covers that).

Run alone with `pytest -m fuzz`. Model commands use the tiny random Qwen2 with tiny counts and a subset of the
files: every malformed line at once, odd-but-valid text, no valid line. The reader they share is exercised line
kind by line kind through the model-free commands. Thought Anchors folders are built at test time from the authors'
data (skipped when it is absent; set ANCHORS_TA_DATA).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from typer.testing import CliRunner

from anchors.cli import app
from fuzz_inputs import (  # type: ignore[import-not-found]
    BASE,
    CLEAN_IDS,
    LABELED,
    MARKUP,
    PROBLEM,
    RESAMPLED,
    SYMPY_BOMBS,
    FileCase,
    FolderCase,
    clean_lines,
    clean_problem_lines,
    folder_cases,
    line,
    problem_cases,
    record,
    ta_fixture,
    trace_cases,
)

pytestmark = pytest.mark.fuzz
runner = CliRunner()
TINY = ["--model", "tiny-qwen2", "--device", "cpu"]
TA_READER_XFAIL = "per-trace TA reader: issue 12, lead"
RESULTS_READER_XFAIL = "per-trace results reader: issue 12, lead"


# --- running and checking -------------------------------------------------------------------------------------

def run(args: list[object], expect: int | tuple[int, ...], *, message: str | None = None) -> Any:
    """Invoke the CLI in process; assert no traceback and the exit code (and a piece of the output)."""
    result = runner.invoke(app, [str(a) for a in args])
    assert_no_traceback(result)
    codes = (expect,) if isinstance(expect, int) else expect
    assert result.exit_code in codes, f"exit {result.exit_code}, expected {codes}\n{result.output[-3000:]}"
    if message is not None:
        assert message in result.output, f"{message!r} not in the output\n{result.output[-3000:]}"
    if result.exit_code == 2:
        assert any(row.startswith("error: ") for row in result.stderr.splitlines()) or "Usage:" in result.output
    return result


def assert_no_traceback(result: Any) -> None:
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"uncaught {type(exc).__name__}: {exc}\n{result.output[-3000:]}"
    assert "Traceback (most recent call last)" not in result.output
    assert "internal error:" not in result.output, result.output[-3000:]


def reported_errors(result: Any, path: Path) -> list[str]:
    """The per-line errors reported for `path` (`FILE:LINE: message`; warnings left out)."""
    prefix = f"{path}:"
    return [row for row in result.stderr.splitlines() if row.startswith(prefix) and ": warning: " not in row]


def comparable(value: Any) -> Any:
    """JSON-ish data with NaN made comparable (NaN != NaN) and arrays as lists."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if isinstance(value, np.ndarray):
        return comparable(value.tolist())
    return value


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(row) for row in path.read_text(encoding="utf-8").splitlines() if row.strip()]


def by_trace(rows: list[dict[str, Any]], key: str = "trace_id") -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(str(row[key]), []).append(comparable(row))
    return grouped


def rows_of(*names: str) -> Callable[[Path], dict[str, Any]]:
    """Outputs read from JSONL tables in an output folder (or the output file itself), by trace id."""
    def read(out: Path) -> dict[str, Any]:
        if not names:
            return by_trace(read_jsonl(out))
        found: dict[str, Any] = {}
        for name in names:
            for trace_id, rows in by_trace(read_jsonl(out / name)).items():
                found.setdefault(trace_id, {})[name] = rows
        return found

    return read


def per_trace_files(*names: str, drop: tuple[str, ...] = ()) -> Callable[[Path], dict[str, Any]]:
    """Outputs read from OUT/<trace id>/<name> (JSON, JSONL or NPZ), by trace id; `drop`: keys that vary by run."""
    def read(out: Path) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for folder in sorted(p for p in out.iterdir() if p.is_dir()):
            files = {name: _load(folder / name, drop) for name in names if (folder / name).is_file()}
            if files:
                found[folder.name] = files
        return found

    return read


def _load(path: Path, drop: tuple[str, ...]) -> Any:
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return {k: comparable(arrays[k]) for k in sorted(arrays.files)}
    if path.suffix == ".jsonl":
        return comparable(read_jsonl(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    return comparable({k: v for k, v in data.items() if k not in drop} if isinstance(data, dict) else data)


def solutions_by_trace(out: Path) -> dict[str, Any]:
    """`resample --export-ta OUT`: every chunk's solutions.json, by trace id."""
    return {folder.name: {p.parent.name: comparable(json.loads(p.read_text(encoding="utf-8")))
                          for p in sorted(folder.glob("chunk_*/solutions.json"))}
            for folder in sorted(p for p in out.iterdir() if p.is_dir())}


def traces_by_id(out: Path) -> dict[str, Any]:
    return {row["id"]: [comparable(row)] for row in read_jsonl(out)}


# --- the commands -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One command as the fuzz suite runs it: argv for (input, output), what the output is, how to read it."""

    name: str
    argv: Callable[[Path, Path], list[object]]
    out_kind: Literal["file", "dir"]
    outputs: Callable[[Path], dict[str, Any]]
    model: bool = False
    skips_timeouts: bool = False  # leaves out the bombs that time out (test_sympy_bombs_end_within_the_timeout has them)
    needs_traces: bool = False  # no valid trace at all is fatal (exit 2), unless lines were skipped (exit 1)
    reuses: str | None = None  # a file of the clean run's output folder each run starts from (the rollout store)

    def __str__(self) -> str:
        return self.name


def _replacements(folder: Path) -> Path:
    """Counterfactual sentences for `patch`: sentence 0 of every trace the suite uses."""
    path = folder / "replacements.jsonl"
    ids = [*CLEAN_IDS, *(trace_id for case in trace_cases() for trace_id in case.valid), "odd-mix"]
    path.write_text("".join(json.dumps({"trace_id": i, "sentence": 0, "text": "A different first step."}) + "\n"
                            for i in ids), encoding="utf-8")
    return path


CHEAP = [
    Command("split", lambda i, o: ["split", i, "--out", o], "file", rows_of()),
    Command("grade", lambda i, o: ["grade", i, "--timeout", "1", "--out", o], "file", rows_of(), skips_timeouts=True),
    Command("label", lambda i, o: ["label", i, "--labeller", "offline", "--out", o], "file", rows_of()),
    Command("causality-validity", lambda i, o: ["causality", i, "--tests", "validity", "--out", o], "dir",
            per_trace_files("validity_sentences.jsonl", "validity_claims.jsonl"),
            skips_timeouts=True, needs_traces=True),
]
MODEL = [
    Command("score", lambda i, o: ["score", i, *TINY, "--rollouts", "1", "--max-new-tokens", "3", "--no-forced",
                                   "--no-matrix", "--tags", "none", "--bootstrap", "0", "--out", o], "dir",
            per_trace_files("scores.jsonl", "alternatives.json"), model=True, reuses="rollouts.sqlite"),
    Command("resample", lambda i, o: ["resample", i, *TINY, "--rollouts", "2", "--max-new-tokens", "3",
                                      "--store", o.parent / f"{o.name}.sqlite", "--export-ta", o], "dir",
            solutions_by_trace, model=True),
    Command("causality-model", lambda i, o: ["causality", i, *TINY, "--tests", "early", "--samples", "1",
                                             "--points", "2", "--answer-tokens", "2", "--out", o], "dir",
            per_trace_files("early_answering.jsonl"), model=True, skips_timeouts=True,
            needs_traces=True),
    Command("receivers", lambda i, o: ["receivers", i, *TINY, "--top-k", "2", "--out", o], "dir",
            per_trace_files("receivers.npz"), model=True, needs_traces=True),
    Command("suppress", lambda i, o: ["suppress", i, *TINY, "--sentences", "0-1", "--out", o], "dir",
            per_trace_files("suppression.npz"), model=True),
    Command("patch", lambda i, o: ["patch", i, *TINY, "--layers", "0", "--replacements", _replacements(i.parent),
                                   "--out", o], "dir", per_trace_files("patching.npz"), model=True),
]
GENERATE = Command("generate", lambda i, o: ["generate", *TINY, "--problems", i, "--max-new-tokens", "3", "--out", o],
                   "file", traces_by_id, model=True)

_clean_runs: dict[str, dict[str, Any]] = {}
_clean_out: dict[str, Path] = {}


def clean_outputs(command: Command, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The command's outputs on the clean file (once per session)."""
    if command.name not in _clean_runs:
        folder = tmp_path_factory.mktemp(f"clean-{command.name}")
        lines = clean_problem_lines() if command is GENERATE else clean_lines()
        source = folder / "clean.jsonl"
        source.write_bytes(b"\n".join(lines) + b"\n")
        out = folder / ("out.jsonl" if command.out_kind == "file" else "out")
        run(command.argv(source, out), 0)
        _clean_runs[command.name], _clean_out[command.name] = command.outputs(out), out
        assert sorted(_clean_runs[command.name]) == sorted(CLEAN_IDS), command.name
    return _clean_runs[command.name]


def check_file_case(command: Command, case: FileCase, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                    clean: tuple[bytes, bytes] | None = None) -> None:
    expected = clean_outputs(command, tmp_path_factory)
    source = tmp_path / "input.jsonl"
    source.write_bytes(case.build(clean))
    out = tmp_path / ("out.jsonl" if command.out_kind == "file" else "out")
    if command.reuses:  # the clean traces' rollouts come from the store: same rollouts, so the scores must match
        out.mkdir()
        shutil.copyfile(_clean_out[command.name] / command.reuses, out / command.reuses)
    needs_traces = command.needs_traces and not case.ids
    result = run(command.argv(source, out), case.exit_code if not needs_traces or case.rejected else 2,
                 message=case.message)
    errors = reported_errors(result, source)
    assert len(errors) == case.rejected, "\n".join(errors) or result.output[-2000:]
    if not case.ids:
        return
    got = command.outputs(out)
    assert sorted(got) == sorted(case.ids)
    for trace_id in CLEAN_IDS if case.keeps_clean else ():
        assert got[trace_id] == expected[trace_id], f"{command}: {trace_id} differs from the clean run"


# --- JSONL files, line kind by line kind, through the model-free commands -----------------------------------

TIMES_OUT = {f"sympy-{name}" for name in ("power-tower", "factorial", "nested-parens", "nested-fracs")}
CHEAP_CASES = [pytest.param(command, case, id=f"{command}-{case.name}") for command in CHEAP for case in trace_cases()
               if not (command.skips_timeouts and case.name in TIMES_OUT)]


@pytest.mark.parametrize(("command", "case"), CHEAP_CASES)
def test_trace_file(command: Command, case: FileCase, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_file_case(command, case, tmp_path, tmp_path_factory)


def test_sympy_bombs_end_within_the_timeout(tmp_path: Path) -> None:
    """Each bomb gets a grade (ok, timeout or parse_error), never a hang or a crash; the clean traces' grades stay."""
    names = list(SYMPY_BOMBS)
    source = tmp_path / "bombs.jsonl"
    source.write_bytes(FileCase("bombs", tuple(line(record(f"bomb-{name}", answer_text=a, gold_answer=g))
                                                for name, (a, g) in SYMPY_BOMBS.items())).build())
    out = tmp_path / "grades.jsonl"
    run(["grade", source, "--timeout", "1", "--out", out], 0)
    rows = {row["trace_id"]: row for row in read_jsonl(out)}
    assert sorted(rows) == sorted([*CLEAN_IDS, *(f"bomb-{name}" for name in names)])
    assert {rows[f"bomb-{name}"]["status"] for name in names} <= {"ok", "timeout", "parse_error", "no_answer"}
    assert rows["bomb-unclosed-boxed"]["status"] == "no_answer"
    assert rows["bomb-huge-integer"]["status"] == "ok" and rows["bomb-huge-integer"]["correct"] is False
    assert all(rows[trace_id]["correct"] is True for trace_id in CLEAN_IDS)


# --- the model commands: every bad line at once, odd text, no valid line -----------------------------------------

def all_bad_lines() -> FileCase:
    cases = [c for c in trace_cases() if c.rejected and c.keeps_clean and not c.transform and not c.heavy]
    return FileCase("every-bad-line", tuple(row for c in cases for row in c.middle), rejected=sum(c.rejected for c in cases))


# CRLF, BOM and the empty file go through the same reader as in the model-free commands; a model command gets
# every bad line at once, text that is odd but valid, and a file with no valid line.
MODEL_CASES = [
    all_bad_lines(),
    FileCase("odd-text", (line(record("odd-mix", problem=MARKUP, gold_answer="[/b]", answer_text="\\boxed{4} [/i]",
                                      thinking=f"Look: {MARKUP}. Two\u0000plus \u001b[31mtwo\u001b[0m. \u202eevil\u202c "
                                               "\U0001f914 2 + 2 = 4.")),), valid=("odd-mix",)),
    FileCase("only-bad-lines", transform=lambda body: b"{broken\nnull\n", rejected=2, keeps_clean=False),
]


@pytest.mark.parametrize(("command", "case"), [pytest.param(c, k, id=f"{c}-{k.name}") for c in MODEL for k in MODEL_CASES])
def test_model_command(command: Command, case: FileCase, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_file_case(command, case, tmp_path, tmp_path_factory)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in problem_cases()])
def test_generate_problems(case: FileCase, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    check_file_case(GENERATE, case, tmp_path, tmp_path_factory, clean=clean_problem_lines())


# --- output paths: checked before any work starts -------------------------------------------------------------

@dataclass(frozen=True)
class OutputCase:
    name: str
    make: Callable[[Path, str], Path]  # (tmp folder, kind) -> the output path to pass
    kinds: tuple[str, ...]
    message: str | None  # None: the path is fine and the command succeeds


def _file_in_the_way(tmp: Path, kind: str) -> Path:
    (tmp / "taken").write_text("x")
    return tmp / "taken"


def _folder_in_the_way(tmp: Path, kind: str) -> Path:
    (tmp / "taken.jsonl").mkdir()
    return tmp / "taken.jsonl"


def _under_a_file(tmp: Path, kind: str) -> Path:
    (tmp / "plain-file").write_text("x")
    return tmp / "plain-file" / "sub" / ("out.jsonl" if kind == "file" else "out")


OUTPUT_CASES = [
    OutputCase("file-where-a-folder-is-wanted", _file_in_the_way, ("dir",), "is a file, but a folder is needed"),
    OutputCase("folder-where-a-file-is-wanted", _folder_in_the_way, ("file",), "is a folder, but a file is needed"),
    OutputCase("path-under-a-file", _under_a_file, ("file", "dir"), "is a file, not a folder"),
    OutputCase("pseudo-file-system", lambda tmp, kind: Path("/proc/anchors-fuzz/out"), ("file", "dir"), "cannot write in /proc"),
    OutputCase("permission-denied", lambda tmp, kind: Path("/sys/anchors-fuzz/out"), ("file", "dir"), "cannot write in /sys"),
    OutputCase("name-too-long", lambda tmp, kind: tmp / ("x" * 300) / "out", ("file", "dir"), "too long"),
    OutputCase("markup-in-the-name", lambda tmp, kind: tmp / "out[/b][bold]" / "out", ("file", "dir"), None),
]


def _output_commands() -> list[tuple[str, Callable[[Path, Path], list[object]], str, bool]]:
    """(name, argv for (clean input, output path), kind, runs a model) for every output option of every command."""
    commands = [(c.name, c.argv, c.out_kind, c.model) for c in (*CHEAP, *MODEL)]
    return [
        *commands,
        ("label-save-labelled", lambda i, o: ["label", i, "--labeller", "offline", "--save-labelled", o], "file", False),
        ("label-fit-out", lambda i, o: ["label", "--fit", i, "--text-only", "--out", o if os.path.isdir(o) else o.with_name(o.name + ".npz")],
         "file", False),
        ("resample-store", lambda i, o: ["resample", i, *TINY, "--rollouts", "1", "--max-new-tokens", "2", "--store", o], "file", True),
        ("generate", lambda i, o: ["generate", *TINY, "--problem", "What is 1 plus 1?", "--max-new-tokens", "2", "--out", o], "file", True),
        ("figures", lambda i, o: ["figures", i.parent / "results", "--format", "html", "--per-trace", "none", "--out", o], "dir", False),
        ("report", lambda i, o: ["report", i.parent / "results", "--alternatives", "1", "--out", o], "dir", False),
        ("compat-check", lambda i, o: ["compat", "check", i.parent / "ta", "--no-similarity", "--out", o], "dir", False),
    ]


OUTPUT_PARAMS = [pytest.param(name, argv, kind, case, id=f"{name}-{case.name}")
                 for name, argv, kind, model in _output_commands() for case in OUTPUT_CASES
                 if kind in case.kinds and not (model and case.message is None)]


@pytest.mark.parametrize(("name", "argv", "kind", "case"), OUTPUT_PARAMS)
def test_output_path(name: str, argv: Callable[[Path, Path], list[object]], kind: str, case: OutputCase,
                     tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pseudo = {"pseudo-file-system": Path("/proc"), "permission-denied": Path("/sys")}.get(case.name)
    if pseudo is not None and not (sys.platform.startswith("linux") and pseudo.is_dir()):
        pytest.skip(f"{pseudo} is a Linux pseudo file system, absent here")
    source = tmp_path / "clean.jsonl"
    source.write_bytes(b"\n".join(clean_lines()) + b"\n")
    if name == "label-fit-out":  # a labelled set instead
        sentences = [{"text": "Let me compute 3 * 4.", "tags": ["plan_generation"]}, {"text": "3 * 4 = 12.", "tags": ["active_computation"]},
                     {"text": "So the answer is 12.", "tags": ["final_answer_emission"]}]
        source.write_text("".join(json.dumps({"id": f"l{k}", "sentences": sentences}) + "\n" for k in range(3)), encoding="utf-8")
    if name in ("figures", "report"):
        _write_results(tmp_path / "results")
    if name == "compat-check":
        shutil.copytree(request.getfixturevalue("ta_clean"), tmp_path / "ta")
    out = case.make(tmp_path, kind)
    run(argv(source, out), 2 if case.message else 0, message=case.message)


def _write_results(folder: Path) -> None:
    from anchors.report.synthetic import synthetic_results
    from anchors.results import write_results

    for k in range(2):
        write_results(synthetic_results(6, n_rollouts=2, n_layers=2, n_heads=2, seed=k, trace_id=f"trace-{k}"), folder)


# --- inputs that are not a JSONL file, and option values ------------------------------------------------------

INPUT_COMMANDS = {c.name: c for c in (*CHEAP, *MODEL)}


@pytest.mark.parametrize("name", sorted(INPUT_COMMANDS))
@pytest.mark.parametrize(("what", "message"), [("missing", "no such file"), ("folder", "is a folder")])
def test_input_path(name: str, what: str, message: str, tmp_path: Path) -> None:
    source = tmp_path / "traces.jsonl"
    if what == "folder":
        source.mkdir()
    command = INPUT_COMMANDS[name]
    run(command.argv(source, tmp_path / ("out.jsonl" if command.out_kind == "file" else "out")), 2, message=message)


OPTION_CASES = [
    # fixed-choice options are checked by the parser: the value is shown as typed, never read as markup
    (["split", "{clean}", "--mode", "[/b]"], 2, "'[/b]' is not one of"),
    (["grade", "{clean}", "--mode", "[bold]x"], 2, "'[bold]x' is not one of"),
    (["grade", "{clean}", "--method", "[/i]"], 2, "'[/i]' is not one of"),
    (["grade", "{clean}", "--timeout", "-1"], 2, "timeout must be a positive"),
    (["grade", "{clean}", "--timeout", "nan"], 2, "timeout must be a positive"),
    (["label", "{clean}", "--mode", "[/b]", "--labeller", "offline"], 2, "'[/b]' is not one of"),
    (["label", "{clean}", "--labeller", "[/b]"], 2, None),
    (["label", "{clean}", "--tagger", "{tmp}/missing.npz"], 2, None),
    (["label", "{clean}", "--taxonomy", "{tmp}/taxonomy.json"], 2, "{tmp}/taxonomy.json: cannot read the taxonomy as JSON (JSON nested"),
    (["causality", "{clean}", "--tests", "validity,[/b]"], 2, None),
    (["causality", "{clean}", "--tests", "validity,resilience", "--importance", "{tmp}/deep.jsonl", *TINY], 2, "{tmp}/deep.jsonl:1"),
    (["causality", "{clean}", "--paraphrase-fractions", "[/b]", "--tests", "validity"], 2, "--paraphrase-fractions"),
    (["score", "{clean}", "--mode", "[/b]"], 2, "'[/b]' is not one of"),
    (["score", "{clean}", "--tags", "[/b]"], 2, None),
    (["score", "{clean}", "--backend", "[/b]", *TINY], 2, "'[/b]' is not one of"),
    (["resample", "{clean}", "--mode", "[/b]", *TINY], 2, "'[/b]' is not one of"),
    (["suppress", "{clean}", *TINY, "--layers", "[/b]"], 2, "--layers takes indices"),
    (["patch", "{clean}", *TINY, "--sites", "[/b]"], 2, "--sites must be"),
    (["patch", "{clean}", *TINY, "--replacements", "{tmp}/deep.jsonl"], 2, "{tmp}/deep.jsonl:1"),
    (["receivers", "{clean}", "--model", "[/b]-no-such-model", "--device", "cpu"], 2, None),
    (["figures", "{tmp}/results", "--format", "[/b]", "--out", "{tmp}/figs"], 2, None),
    # an unknown --metric is a warning per figure (figures) or ignored (report): exit 0, the name printed as typed
    (["figures", "{tmp}/results", "--metric", "[/b]", "--format", "html", "--out", "{tmp}/figs"], 0, "no metric column '[/b]'"),
    (["report", "{tmp}/results", "--metric", "[/b]", "--out", "{tmp}/reports"], 0, None),
    (["generate", *TINY, "--problems", "{tmp}/deep.jsonl", "--out", "{tmp}/g.jsonl"], 1, "nested"),
]


@pytest.mark.parametrize(("argv", "code", "message"), [pytest.param(*c, id=f"{c[0][0]}-{k}") for k, c in enumerate(OPTION_CASES)])
def test_option_value(argv: list[str], code: int, message: str | None, tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(clean_lines()) + b"\n")
    (tmp_path / "deep.jsonl").write_bytes(b"[" * 3000 + b"]" * 3000 + b"\n")
    (tmp_path / "taxonomy.json").write_bytes(b"[" * 3000 + b"]" * 3000)
    _write_results(tmp_path / "results")
    fill = {"{clean}": str(clean), "{tmp}": str(tmp_path)}

    def expand(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    run([expand(a) for a in argv], code, message=expand(message) if message else None)


# --- Thought Anchors folders ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ta_clean(ta_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ta_fixture(ta_data, tmp_path_factory.mktemp("ta-clean"))


TRACE_FILES = {PROBLEM, BASE}
TA_FILES = {PROBLEM, BASE, LABELED, RESAMPLED}


@dataclass(frozen=True)
class TACommand:
    name: str
    argv: Callable[[Path, Path], list[object]]
    reads: frozenset[str]  # the files of a problem folder it reads
    outputs: Callable[[Path], dict[str, Any]]
    builds_traces: bool = True  # False: reads the files without building a Trace
    costly: bool = False  # ~1 s a run: only the damage to the files it alone reads, and a core set of the others
    optional: frozenset[str] = frozenset()  # files it can do without: a damaged one is named, the trace still processed

    def __str__(self) -> str:
        return self.name

    def notices(self, case: FolderCase) -> bool:
        if case.hides_folder:  # a file turned into a folder: noticed by the commands that read that file
            return case.file in self.reads
        return not case.valid and case.file in self.reads and (self.builds_traces or not case.trace_only)


def _report_names(out: Path) -> dict[str, Any]:
    return {p.stem: p.stat().st_size > 0 for p in out.glob("*.html")}


def _compat_traces(out: Path) -> dict[str, Any]:
    report = json.loads((out / "compat_report.json").read_text(encoding="utf-8"))
    return {trace_id: comparable(checks) for trace_id, checks in report["per_trace"].items()}


def _figure_traces(out: Path) -> dict[str, Any]:
    return {p.parent.name: p.stat().st_size > 0 for p in (out / "traces").glob("*/graph.html")}


GOOD, DAMAGED = "model-x--problem_0", "model-x--problem_1"
TA_COMMANDS = [
    TACommand("split", lambda i, o: ["split", "--from-ta", i, "--mode", "paper", "--out", o / "s.jsonl"], frozenset(TRACE_FILES),
              lambda o: rows_of()(o / "s.jsonl")),
    TACommand("grade", lambda i, o: ["grade", "--from-ta", i, "--timeout", "1", "--out", o / "g.jsonl"], frozenset(TRACE_FILES),
              lambda o: rows_of()(o / "g.jsonl")),
    TACommand("label", lambda i, o: ["label", "--from-ta", i, "--labeller", "offline", "--out", o / "l.jsonl"],
              frozenset(TRACE_FILES), lambda o: rows_of()(o / "l.jsonl")),
    TACommand("causality", lambda i, o: ["causality", "--from-ta", i, "--tests", "validity", "--out", o],
              frozenset(TRACE_FILES), per_trace_files("validity_sentences.jsonl")),
    TACommand("score", lambda i, o: ["score", "--from-ta", i, "--bootstrap", "0", "--out", o], frozenset(TA_FILES),
              per_trace_files("scores.jsonl"), costly=True, optional=frozenset({LABELED})),  # tags, stored metrics
    TACommand("report", lambda i, o: ["report", "--from-ta", i, "--alternatives", "1", "--out", o], frozenset(TA_FILES),
              _report_names, costly=True, optional=frozenset({PROBLEM, BASE, RESAMPLED})),  # header, alternatives
    TACommand("figures", lambda i, o: ["figures", "--from-ta", i, "--format", "html", "--out", o],  # no alternatives
              frozenset({PROBLEM, BASE, LABELED}), _figure_traces, costly=True, optional=frozenset({PROBLEM, BASE})),
    # the base solution is read with the trace reader's checks (a solution with no closed thinking cannot be split)
    TACommand("compat-check", lambda i, o: ["compat", "check", i, "--no-similarity", "--out", o],  # no rollouts
              frozenset({BASE, LABELED}), _compat_traces),
]
# A damaged folder a command notices is warned about by name and skipped (or its optional file left out); the
# other folders are processed and the command exits 1. Cases a reader does not yet survive go here (strict xfail).
TA_XFAIL: set[tuple[str, str]] = set()
# The trace-building reader the costly commands share with split/grade: a few of its cases are enough for them.
CORE_FOLDER_CASES = {"base-solution-no-think-close", "solution-is-int", "base-solution-deep", "problem-invalid-json",
                     "problem-is-a-folder", "markup-in-problem", "gt-answer-is-int"}


def _ta_params() -> list[Any]:
    params = []
    for command in TA_COMMANDS:
        for case in folder_cases():
            if command.costly and case.name not in CORE_FOLDER_CASES and (case.file in TRACE_FILES or not command.notices(case)):
                continue
            marks = [pytest.mark.xfail(strict=True, reason=TA_READER_XFAIL)] if (command.name, case.name) in TA_XFAIL else []
            params.append(pytest.param(command, case, id=f"{command}-{case.name}", marks=marks))
    return params


_ta_clean_runs: dict[str, dict[str, Any]] = {}


@pytest.mark.parametrize(("command", "case"), _ta_params())
def test_thought_anchors_folder(command: TACommand, case: FolderCase, ta_clean: Path, tmp_path: Path,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    if command.name not in _ta_clean_runs:
        out = tmp_path_factory.mktemp(f"ta-clean-{command.name}")
        run(command.argv(ta_clean, out), 0)
        _ta_clean_runs[command.name] = command.outputs(out)
    expected = _ta_clean_runs[command.name]
    source = tmp_path / "ta"
    shutil.copytree(ta_clean, source)
    case.damage(source / "model-x" / "problem_1" / case.file)
    out = tmp_path / "out"
    out.mkdir()
    noticed = command.notices(case)
    result = run(command.argv(source, out), 1 if noticed else 0)
    if noticed:
        assert "problem_1" in result.stderr, "the damaged folder is not named"
    got = command.outputs(out)
    if GOOD in expected:  # the good folder's results are those of the undamaged copy
        assert got.get(GOOD) == expected[GOOD]
        kept = not noticed or case.file in command.optional
        assert (DAMAGED in got) == kept


# --- results folders (anchors figures / report RESULTS_DIR) ----------------------------------------------------

RESULTS_CASES = {
    "metrics-csv-garbage": lambda f: (f / "metrics.csv").write_bytes(b"\x00\xff garbage,,,\n\"unclosed"),
    "manifest-invalid": lambda f: (f / "manifest.json").write_bytes(b"{"),
    "manifest-deep": lambda f: (f / "manifest.json").write_bytes(b"[" * 3000 + b"]" * 3000),
    "matrices-npz-garbage": lambda f: (f / "matrices.npz").write_bytes(b"PK\x03\x04 not a zip"),
    "matrices-npz-empty": lambda f: (f / "matrices.npz").write_bytes(b""),
    "early-csv-missing": lambda f: (f / "early_answering_table.csv").unlink(),
    "empty-trace-folder": lambda f: [p.unlink() for p in f.iterdir()],
    "markup-in-sentences": None,
}
RESULTS_XFAIL: set[tuple[str, str]] = set()  # every damage above is read per trace: the other trace is still drawn
# Both commands read a results folder with the same reader: `report` (1.5 s a run) gets two of the damages.
REPORT_RESULTS_CASES = {"manifest-deep", "markup-in-sentences"}
RESULTS_PARAMS = [pytest.param(command, case, id=f"{command}-{case}",
                               marks=[pytest.mark.xfail(strict=True, reason=RESULTS_READER_XFAIL)] if (command, case) in RESULTS_XFAIL else [])
                  for command in ("figures", "report") for case in sorted(RESULTS_CASES)
                  if command == "figures" or case in REPORT_RESULTS_CASES]


@pytest.mark.parametrize(("command", "case"), RESULTS_PARAMS)
def test_results_folder(command: str, case: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    _write_results(results)
    damage = RESULTS_CASES[case]
    if damage is not None:
        damage(results / "trace-1")
    else:
        _markup_results(results / "trace-1")
    argv = (["figures", results, "--format", "html", "--per-trace", "graph", "--out", tmp_path / "figs"] if command == "figures"
            else ["report", results, "--alternatives", "1", "--out", tmp_path / "reports"])
    run(argv, 0 if damage is None else (0, 1))


def _markup_results(folder: Path) -> None:
    path = folder / "metrics.csv"
    import pandas as pd

    table = pd.read_csv(path)
    table["text"] = [f"{MARKUP} {k}" for k in range(len(table))]
    table.to_csv(path, index=False)


# --- --debug and ANCHORS_DEBUG ------------------------------------------------------------------------------

def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    args = ["split", str(tmp_path / "missing.jsonl")]
    assert "Traceback" not in runner.invoke(app, args).output
    shown = runner.invoke(app, ["--debug", *args])
    assert shown.exit_code != 0 and type(shown.exception).__name__ == "InputError"
    with_env = runner.invoke(app, args, env={"ANCHORS_DEBUG": "1"})
    assert type(with_env.exception).__name__ == "InputError"
    assert runner.invoke(app, args).exit_code == 2  # --debug does not stick to the next invocation
    assert os.environ.get("ANCHORS_DEBUG") in (None, "", "0")
