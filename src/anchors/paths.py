"""Where anchors keeps generated files. Caches are content-addressed and safe to delete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from anchors.errors import InputError

RecordT = TypeVar("RecordT", bound=BaseModel)


def project_root() -> Path | None:
    """The source checkout this package runs from (editable install), or None when installed normally."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "anchors").is_dir() else None


def example_file(name: str, instead: str) -> Path:
    """examples/NAME of the source checkout (the demo's inputs); `instead` says what to give without a checkout."""
    root = project_root()
    path = root / "examples" / name if root else None
    if path is None or not path.is_file():
        raise InputError(f"the example {Path(name).stem} live in a source checkout (examples/{name}); {instead}")
    return path


def cache_dir(*parts: str) -> Path:
    """`$ANCHORS_CACHE`, else the checkout's `cache/`, else `~/.cache/anchors`; created on first use."""
    env = os.environ.get("ANCHORS_CACHE")
    if env:
        base = Path(env).expanduser()
    else:
        root = project_root()
        base = root / "cache" if root else Path.home() / ".cache" / "anchors"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Replace `path` with what `write(temporary path)` writes, atomically: a reader never sees half a file, a
    crash leaves the old file (and no temporary one). The file is readable by everyone (results are shared)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_cached(folder: str, key: str, record_type: type[RecordT]) -> RecordT | None:
    """The record cached as `cache_dir(folder)/KEY.json`, or None when there is none or it is damaged (a damaged
    entry is computed again: caches are safe to delete)."""
    path = cache_dir(folder) / f"{key}.json"
    if not path.is_file():
        return None
    try:
        return record_type.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def write_cached(folder: str, key: str, record: BaseModel) -> None:
    atomic_write_text(cache_dir(folder) / f"{key}.json", record.model_dump_json())
