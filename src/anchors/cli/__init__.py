"""The `anchors` command line: parse options, call one library function, print or write the result.

One module per command group registers its commands on `app`; heavy libraries are imported inside the
commands, so `anchors --help` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors._version import __version__
from anchors.cli.failures import checks_outputs, handles_errors, set_debug  # noqa: F401 (the command modules import the first two from here)
from anchors.errors import AnchorsError

app = typer.Typer(
    name="anchors",
    help="Which sentences of a reasoning trace cause its final answer?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",  # help in boxes; every help text is escaped first (see _plain_help below)
)

# Options shared by several commands.
def _version(value: bool) -> None:
    if value:
        typer.echo(f"anchors {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    context: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error (also ANCHORS_DEBUG=1).")] = False,
) -> None:
    """anchors: thought anchors, white-box attention and trace-level causality tests for reasoning models."""
    set_debug(debug)
    from anchors.cli.backends import close_samplers

    context.call_on_close(close_samplers)  # a command's Ray workers stop with it


def check_mode(mode: str) -> str:
    if mode not in ("default", "paper"):
        raise AnchorsError(f"--mode must be 'default' or 'paper', not {mode!r}")
    return mode


class Inputs:
    """Traces from a JSONL file (bad lines reported as they are met) or from a Thought Anchors folder (a damaged
    trace folder reported and skipped as it is met); with `shard` ('I/N'), only the traces of that shard."""

    def __init__(self, path: Path | None, from_ta: Path | None, shard: str | None = None) -> None:
        if (path is None) == (from_ta is None):
            raise AnchorsError("give either a TRACES.jsonl file or --from-ta DIR (exactly one)")
        self.path, self.from_ta = path, from_ta
        self.shard = parse_shard(shard)
        self.invalid = 0
        self.folders: Any = None  # the FolderReader of --from-ta

    def __iter__(self) -> Iterator[Any]:
        for trace in self._read():
            if self.shard is None or self.shard.holds(trace.id):
                yield trace

    def _read(self) -> Iterator[Any]:
        if self.from_ta is not None:
            from anchors.thought_anchors import load_thought_anchors

            self.folders = ta_reader(self.from_ta)
            yield from load_thought_anchors(self.from_ta, self.folders)
            self.invalid = self.folders.problems
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
        if self.folders is not None:
            finish_folders(self.folders, "read", skip_invalid)
        elif self.invalid:
            console.warn(f"{self.invalid} invalid line(s) skipped" + ("" if skip_invalid else " (exit 1; --skip-invalid to exit 0)"))
            if not skip_invalid:
                raise typer.Exit(1)


def parse_shard(text: str | None) -> Any:
    """The Shard of a --shard I/N option (None: every trace)."""
    if text is None:
        return None
    from anchors.traces.shards import Shard

    return Shard.parse(text)


def results_dir(out: Path, *, overwrite: bool = False, store: Path | None = None) -> Any:
    """The results folder every command writes (checked writable before any work)."""
    from anchors.results import ResultsDir

    results = ResultsDir(out, overwrite=overwrite, store=store)
    results.check_writable()
    return results


def limited(inputs: Inputs, limit: int | None) -> list[Any]:
    """The first `limit` traces (all with None), read before any work so every output is checked first."""
    items = []
    for trace in inputs:
        if limit is not None and len(items) >= limit:
            break
        items.append(trace)
    return items


def reporter(failed: list[str]) -> Callable[[Any, AnchorsError], None]:
    """Report an error of one trace (its id and what went wrong) and remember it; the other traces go on."""

    def report(trace: Any, error: AnchorsError) -> None:
        console.error(f"{trace.id}: {error}" if trace.id not in str(error) else str(error))
        failed.append(trace.id)

    return report


def finish(inputs: Inputs, skip_invalid: bool, failed: list[str] | None = None) -> None:
    """The end of a command over traces: the invalid input and the failed traces, each in one line; exit 1 if
    a trace failed, or input was invalid without --skip-invalid."""
    if failed:
        console.warn(f"{len(failed)} trace(s) failed: {', '.join(failed)}")
    try:
        inputs.exit_if_invalid(skip_invalid)
    finally:
        if failed:
            raise typer.Exit(1)


def ta_reader(root: Path) -> Any:
    """A FolderReader that prints each damaged trace folder as a warning when it is met."""
    from anchors.thought_anchors import FolderReader

    return FolderReader(root, on_skip=lambda skipped: console.warn(str(skipped)))


def finish_folders(reader: Any, verb: str, skip_invalid: bool) -> None:
    """The summary line of a --from-ta run when something was skipped or left out; exit 1 then (0 with --skip-invalid)."""
    if reader.problems:
        console.warn(reader.summary(verb) + ("" if skip_invalid else " (exit 1; --skip-invalid to exit 0)"))
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
from anchors.cli import analyze  # noqa: E402,F401
from anchors.cli import store as store_commands  # noqa: E402,F401  (the `store` group)


def _plain_help(typer_app: typer.Typer) -> None:
    """Escape every help text once, so rich draws its boxes but never reads "[source, target]" or "<trace id>"
    in a help text as markup (the texts describe arrays and paths, not styles)."""
    import inspect
    import typing

    from rich.markup import escape

    seen: set[int] = set()
    for command in typer_app.registered_commands:
        callback = inspect.unwrap(command.callback)  # type: ignore[arg-type]
        if command.help is None and callback.__doc__:  # paragraphs joined into lines: rich wraps them itself
            paragraphs = inspect.cleandoc(callback.__doc__).split("\n\n")
            command.help = escape("\n\n".join(" ".join(p.split()) for p in paragraphs))
        for hint in typing.get_type_hints(callback, include_extras=True).values():
            for info in getattr(hint, "__metadata__", ()):
                if getattr(info, "help", None) and id(info) not in seen:
                    seen.add(id(info))
                    info.help = escape(info.help)
    for group in typer_app.registered_groups:
        _plain_help(group.typer_instance)


_plain_help(app)

