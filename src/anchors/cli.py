"""The `anchors` command line: parse options, call one library function, print or write the result.

Heavy libraries are imported inside the commands, so `anchors --help` stays instant.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from anchors import __version__, console
from anchors.errors import AnchorsError

app = typer.Typer(
    name="anchors",
    help="Which sentences of a reasoning trace cause its final answer?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands.
SkipInvalid = Annotated[bool, typer.Option("--skip-invalid", help="Exit 0 even when some input lines are invalid (they are still reported).")]
FromTA = Annotated[Optional[Path], typer.Option("--from-ta", help="Read traces from a Thought Anchors folder (problem.json + base_solution.json) instead of JSONL.")]
ModeOption = Annotated[str, typer.Option("--mode", help="'default', or 'paper' to reproduce the published method's quirks.")]


def handles_errors(command: F) -> F:
    """Print an AnchorsError as one clear line and exit 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AnchorsError as exc:
            console.error(str(exc))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"anchors {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """anchors: thought anchors, white-box attention and trace-level causality tests for reasoning models."""


def _check_mode(mode: str) -> str:
    if mode not in ("default", "paper"):
        raise AnchorsError(f"--mode must be 'default' or 'paper', not {mode!r}")
    return mode


class _Inputs:
    """Traces from a JSONL file (bad lines reported as they are met) or from a Thought Anchors folder."""

    def __init__(self, path: Path | None, from_ta: Path | None) -> None:
        if (path is None) == (from_ta is None):
            raise AnchorsError("give either a TRACES.jsonl file or --from-ta DIR (exactly one)")
        self.path, self.from_ta = path, from_ta
        self.invalid = 0

    def __iter__(self) -> Iterator[Any]:
        if self.from_ta is not None:
            from anchors.traces.thought_anchors import load_thought_anchors

            yield from load_thought_anchors(self.from_ta)
            return
        from anchors.traces.jsonl import read_traces

        reader = read_traces(self.path)  # type: ignore[arg-type]
        shown = 0
        for trace in reader:
            shown = self._report(reader.problems, shown)
            yield trace
        self._report(reader.problems, shown)
        self.invalid = len(reader.errors)

    @staticmethod
    def _report(problems: list[Any], shown: int) -> int:
        for problem in problems[shown:]:
            console.line_problem(problem)
        return len(problems)

    def exit_if_invalid(self, skip_invalid: bool) -> None:
        if self.invalid:
            console.warn(f"{self.invalid} invalid line(s) skipped" + ("" if skip_invalid else " (exit 1; --skip-invalid to exit 0)"))
            if not skip_invalid:
                raise typer.Exit(1)


@app.command()
@handles_errors
def models() -> None:
    """List the models available here: bundled, tiny test models and converted copies in the cache."""
    from anchors.models import available_models

    rows = [(m.name, m.kind, m.status, _size(m.size_bytes), m.location) for m in available_models()]
    console.table("Models", ["name", "kind", "status", "size", "location"], rows)
    console.stdout.print("Any Hugging Face folder, hub name (when a hub is reachable) or .gguf file also works: --model PATH")


def _size(size_bytes: int | None) -> str:
    return "" if not size_bytes else f"{size_bytes / 2**20:.0f} MiB"


@app.command()
@handles_errors
def split(
    traces: Annotated[Optional[Path], typer.Argument(help="JSONL file of traces.")] = None,
    mode: ModeOption = "default",
    from_ta: FromTA = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the sentences as JSONL here instead of printing them.")] = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Split each trace's thinking into sentences with character spans."""
    from anchors.traces.jsonl import write_jsonl
    from anchors.traces.segment import split_sentences

    inputs = _Inputs(traces, from_ta)
    rows = []
    for trace in inputs:
        sentences = split_sentences(trace.thinking, mode=_check_mode(mode))
        rows.extend({"trace_id": trace.id, **dataclasses.asdict(s)} for s in sentences)
        if out is None:
            _print_sentences(trace.id, sentences)
    if out is not None:
        write_jsonl(out, rows)
        console.stdout.print(f"wrote {len(rows)} sentences to {out}")
    inputs.exit_if_invalid(skip_invalid)


def _print_sentences(trace_id: str, sentences: list[Any]) -> None:
    rows = [(s.index, f"{s.start}–{s.end}", s.text) for s in sentences]
    console.table(f"{trace_id}: {len(sentences)} sentences", ["#", "chars", "text"], rows)


@app.command()
@handles_errors
def grade(
    traces: Annotated[Optional[Path], typer.Argument(help="JSONL file of traces.")] = None,
    mode: ModeOption = "default",
    method: Annotated[Optional[str], typer.Option("--method", help="Answer extractor: boxed_last, boxed_first, answer_is, last_number, choice, auto (default: the mode's).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer comparison before giving up with status 'timeout'.")] = 5.0,
    from_ta: FromTA = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write one JSON line per trace here.")] = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Extract each trace's final answer and grade it against the gold answer."""
    from anchors.traces.answers import grade as grade_answer
    from anchors.traces.jsonl import write_jsonl

    inputs = _Inputs(traces, from_ta)
    rows = []
    for trace in inputs:
        result = grade_answer(trace.answer_text, trace.gold_answer, mode=_check_mode(mode), method=method, timeout=timeout)
        rows.append({"trace_id": trace.id, "answer": result.answer, "key": result.key, "gold": trace.gold_answer,
                     "correct": result.correct, "status": str(result.status.value)})
    console.table("Grades", ["trace", "answer", "gold", "correct", "status"],
                  [(r["trace_id"], r["answer"], r["gold"], r["correct"], r["status"]) for r in rows])
    if out is not None:
        write_jsonl(out, rows)
    inputs.exit_if_invalid(skip_invalid)


@app.command()
@handles_errors
def generate(
    model: Annotated[str, typer.Option("--model", help="Model alias, local folder, .gguf file or hub name.")] = "smollm2-135m",
    problem: Annotated[Optional[str], typer.Option("--problem", help="One problem text.")] = None,
    problems: Annotated[Optional[Path], typer.Option("--problems", help="JSONL of problems: {\"id\", \"problem\", \"gold_answer\"}.")] = None,
    out: Annotated[Path, typer.Option("--out", help="JSONL file the traces are appended to (problems already in it are skipped).")] = Path("results/traces.jsonl"),
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N problems.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Token budget of the thinking.")] = 320,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    template: Annotated[Optional[str], typer.Option("--template", help="paper, r1-distill, qwen3 or chat (default: chosen from the model).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="float32 or bfloat16.")] = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Generate on-policy reasoning traces with a local model and append them to a JSONL file."""
    from anchors.rollouts.generate import GenerationConfig, generate_traces, problems_to_run

    todo, reader = problems_to_run(problem=problem, problems_path=problems, out=out, limit=limit)
    if reader is not None:
        for bad in reader.problems:
            console.line_problem(bad)
    if not todo:
        console.stdout.print(f"nothing to do: every problem already has a trace in {out}")
        return
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    written = 0
    for _ in generate_traces(model, todo, out=out, config=config, template=template, device=device, dtype=dtype,
                             progress=console.track):
        written += 1
    console.stdout.print(f"wrote {written} trace(s) to {out}")
    if reader is not None and reader.errors and not skip_invalid:
        raise typer.Exit(1)


@app.command()
@handles_errors
def demo(
    model: Annotated[str, typer.Option("--model", help="Model to run the demo on.")] = "smollm2-135m",
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo's files.")] = Path("results/demo"),
) -> None:
    """The main job on the bundled model: generate a trace for an example problem, split and grade it."""
    from anchors.rollouts.generate import example_problems_path

    traces = out / "traces.jsonl"
    generate(model=model, problems=example_problems_path(), out=traces, limit=1)
    split(traces=traces)
    grade(traces=traces)
