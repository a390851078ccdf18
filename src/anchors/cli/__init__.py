"""The `anchors` command line: parse options, call one library function, print or write the result.

One module per command group registers its commands on `app`; heavy libraries are imported inside the
commands, so `anchors --help` stays instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import __version__, console
from anchors.cli.failures import checks_outputs, handles_errors, set_debug  # noqa: F401 (the command modules import the first two from here)
from anchors.errors import AnchorsError

app = typer.Typer(
    name="anchors",
    help="Which sentences of a reasoning trace cause its final answer?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Options shared by several commands.
SkipInvalid = Annotated[bool, typer.Option("--skip-invalid", help="Exit 0 even when some input lines are invalid (they are still reported).")]
FromTA = Annotated[Path | None, typer.Option("--from-ta", help="Read traces from a Thought Anchors folder (problem.json + base_solution.json) instead of JSONL.")]
ModeOption = Annotated[str, typer.Option("--mode", help="'default', or 'paper' to reproduce the published method's quirks.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"anchors {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error (also ANCHORS_DEBUG=1).")] = False,
) -> None:
    """anchors: thought anchors, white-box attention and trace-level causality tests for reasoning models."""
    set_debug(debug)


def check_mode(mode: str) -> str:
    if mode not in ("default", "paper"):
        raise AnchorsError(f"--mode must be 'default' or 'paper', not {mode!r}")
    return mode


class Inputs:
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


# Command groups register themselves on import (kept last: they import `app` from here).
from anchors.cli import (
    basic,  # noqa: F401
    causality,  # noqa: F401
    figures,  # noqa: F401
    resample,  # noqa: F401
    score,  # noqa: F401
)
from anchors.cli import whitebox  # noqa: E402,F401
from anchors.cli import label  # noqa: E402,F401
