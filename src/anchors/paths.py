"""Where anchors keeps generated files. Caches are content-addressed and safe to delete."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path | None:
    """The source checkout this package runs from (editable install), or None when installed normally."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "anchors").is_dir() else None


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
