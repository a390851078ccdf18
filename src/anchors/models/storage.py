"""Model folders under cache/models: atomic writes and a small provenance record per folder.

Every converted or generated model is written to a temporary sibling folder and renamed into
place in one step, so an interrupted conversion never leaves a half-written cache that a later
run would trust. Each folder carries `anchors-source.json` saying where it came from.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anchors.paths import cache_dir

SOURCE_RECORD = "anchors-source.json"


def models_root() -> Path:
    """cache/models (or $ANCHORS_CACHE/models)."""
    return cache_dir("models")


def model_folder(name: str) -> Path:
    """Where a cached model called `name` lives; not created (cache_dir would create it empty)."""
    return models_root() / name


def read_source_record(folder: Path) -> dict[str, Any] | None:
    """The provenance record of a cached model folder, or None when absent or unreadable."""
    try:
        return json.loads((folder / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, expected: dict[str, Any] | None = None) -> bool:
    """A folder is usable when it has config.json and a source record matching `expected` (if given)."""
    if not (folder / "config.json").is_file():
        return False
    record = read_source_record(folder)
    if record is None:
        return False
    return expected is None or all(record.get(key) == value for key, value in expected.items())


def build_atomically(dest: Path, write: Callable[[Path], None], record: dict[str, Any]) -> Path:
    """Run `write(tmp_folder)`, add the source record, then rename the folder to `dest` in one step.

    When another process finished the same folder first, its copy is kept and ours discarded:
    both were built from the same source, so either is correct.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_sibling(dest) as tmp:
        write(tmp)
        _make_shareable(tmp)
        (tmp / SOURCE_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        _replace_folder(tmp, dest, record)
    return dest


@contextlib.contextmanager
def _temporary_sibling(dest: Path) -> Iterator[Path]:
    # Same parent folder as dest, so the final rename stays on one file system (atomic).
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_shareable(folder: Path) -> None:
    # mkdtemp creates the folder 0700; a finished cache folder gets the usual 0755.
    folder.chmod(0o755)


def _replace_folder(tmp: Path, dest: Path, record: dict[str, Any]) -> None:
    if is_complete(dest, record):
        return  # a concurrent builder won the race
    if dest.exists():
        # Stale (older recipe) or incomplete: move it aside first, since rename(2) only
        # replaces an empty directory.
        stale = Path(tempfile.mkdtemp(prefix=f".{dest.name}.stale-", dir=dest.parent))
        os.replace(dest, stale / dest.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:
        if not is_complete(dest, record):
            raise


def folder_size_bytes(folder: Path) -> int:
    """Total size of the regular files in a folder (0 when it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
