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


# How wide the label of a progress bar may be: at 80 columns the bar, the count and the ETA must still fit.
LABEL_WIDTH = 32


def short_label(text: str, width: int = LABEL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _bar(label_width: int = LABEL_WIDTH) -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(bar_width=None), MofNCompleteColumn(),
                    TextColumn("ETA", style="dim"), TimeRemainingColumn(), console=stderr, transient=False,
                    expand=False)


class TraceBar:
    """One bar for all the sampling of one trace: 'arith-25 · forced answers  ━━━  12/40  ETA 0:00:31'.

    Each phase adds its rollouts to the total and names itself in the label; only rollouts actually sampled
    advance it (store hits never enter the total), so the rate and ETA are those of sampling alone."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id, self._bar, self._task = trace_id, None, None

    def add(self, total: int, phase: str) -> None:
        label = short_label(f"{short_label(self.trace_id, 14)} · {phase}")
        if self._bar is None:
            self._bar = _bar()
            self._bar.start()
            self._task = self._bar.add_task(label, total=total)
        else:
            task = self._bar.tasks[0]
            self._bar.update(self._task, total=(task.total or 0) + total, description=label)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class CountBar:
    """A bar for work reported as (done, total), e.g. sentence embeddings; shown only while there is work."""

    def __init__(self, label: str) -> None:
        self.label, self._bar, self._task = short_label(label), None, None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None and done < total:
            self._bar = _bar()
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)
            if done >= total:
                self._bar.stop()
                self._bar = None


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table of plain cells: `Text` objects, so neither markup nor the repr highlighter touches user text."""
    grid = Table(title=Text(title), title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(Text(column), overflow="fold")
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    stdout.print(grid)
