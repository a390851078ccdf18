"""Terminal output for the CLI: error reporting, progress bars and tables (rich).

Both consoles have markup off: the text printed is full of user data (sentences, answers, ids, paths) and a
sentence like "[/b]" must be shown as written, never parsed as rich markup (a MarkupError would end the command).
The styles anchors adds itself go through `Text` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

stdout = Console(markup=False)
stderr = Console(stderr=True, markup=False)
T = TypeVar("T")


def error(message: str) -> None:
    stderr.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    stderr.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def line_problem(problem: object) -> None:
    """One bad input line, printed as `FILE:LINE: field 'x': message` (machine-greppable)."""
    stderr.print(str(problem), style="red" if getattr(problem, "severity", "error") == "error" else "yellow",
                 highlight=False, soft_wrap=True)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=False,
    )


def track(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate with a progress bar on stderr (stdout stays clean for tables and piping)."""
    with progress() as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table of plain cells: `Text` objects, so neither markup nor the repr highlighter touches user text."""
    grid = Table(title=Text(title), title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(Text(column), overflow="fold")
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    stdout.print(grid)
