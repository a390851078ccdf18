"""Finding the problem folders under a root, and reading them one by one so that a damaged folder costs only itself.

`FolderReader.each(load)` calls `load(ProblemFolder)` per folder; a `DamagedFile` (or any InputError) skips that
folder with a `Skipped` record (trace id, file, what is wrong) handed to `on_skip` as it happens, damaged optional
files are handed over the same way, and `summary()` says in one line how many were read and why others were not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from anchors.errors import InputError
from anchors.thought_anchors.folder import MARKER_FILES, ProblemFolder

T = TypeVar("T")


class DamagedFolderWarning(UserWarning):
    """A problem folder (or one optional file of it) could not be used; the others were read."""


@dataclass(frozen=True)
class Skipped:
    """A problem folder left out (`skipped`), or an optional file of one left out (`skipped` False)."""

    trace_id: str
    reason: str  # names the file: "<path>: <what is wrong>"
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.trace_id}: {self.reason}" + ("; trace skipped" if self.skipped else "; left out")


def find_problem_folders(root: str | Path) -> list[Path]:
    """Every folder under `root` (itself included) holding any of problem.json, base_solution.json or
    chunks_labeled.json, sorted (a folder with only some of them is found, so a missing file can be named)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected a Thought Anchors folder: problem_<id>/ folders with "
                         "problem.json and base_solution.json)")
    found = sorted({p.parent for name in MARKER_FILES for p in root.rglob(name)})
    if not found:
        raise InputError(f"{root}: no problem folders found (none holds {', '.join(MARKER_FILES)})")
    return found


class FolderReader:
    """Read every problem folder under `root` with one function, skipping (and reporting) the damaged ones.

    `on_skip` receives each `Skipped` as it happens (default: a `DamagedFolderWarning`, so notebooks see it).
    """

    def __init__(self, root: str | Path, on_skip: Callable[[Skipped], None] | None = None) -> None:
        self.root = Path(root)
        self.folders = find_problem_folders(self.root)
        self.skipped: list[Skipped] = []
        self.damaged: list[Skipped] = []  # optional files left out of traces that were read
        self.read = 0
        self._on_skip = on_skip or _warn

    def each(self, load: Callable[[ProblemFolder], T], folders: list[Path] | None = None) -> Iterator[T]:
        for path in self.folders if folders is None else folders:
            folder = ProblemFolder(path, self.root)
            try:
                item = load(folder)
            except InputError as exc:
                self._report(Skipped(folder.trace_id, str(exc)), self.skipped)
                continue
            for damage in folder.damaged:
                self._report(Skipped(folder.trace_id, str(damage), skipped=False), self.damaged)
            self.read += 1
            yield item

    @property
    def problems(self) -> int:
        """How many traces were skipped or lost an optional file (the CLI exits 1 when this is not 0)."""
        return len(self.skipped) + len({d.trace_id for d in self.damaged})

    def summary(self, verb: str = "read") -> str:
        """'19 of 20 trace(s) drawn; 1 skipped: <id>' and the traces that lost a damaged optional file (each was
        already reported with its file and reason as it was met)."""
        total = self.read + len(self.skipped)
        line = f"{self.read} of {total} trace(s) {verb}"
        if self.skipped:
            line += f"; {len(self.skipped)} skipped: " + ", ".join(s.trace_id for s in self.skipped)
        if self.damaged:
            line += f"; {len(self.damaged)} damaged optional file(s) left out: " + ", ".join(d.trace_id for d in self.damaged)
        return line

    def _report(self, item: Skipped, into: list[Skipped]) -> None:
        into.append(item)
        self._on_skip(item)


def _warn(item: Skipped) -> None:
    warnings.warn(str(item), DamagedFolderWarning, stacklevel=3)
