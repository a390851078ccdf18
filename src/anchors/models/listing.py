"""available_models(): what `anchors models` lists — bundled aliases, tiny test models, and
every other converted model under cache/models. Reads the file system only (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anchors.models.bundled import BUNDLED_MODELS, BundledModel, bundled_gguf_path
from anchors.models.storage import folder_size_bytes, is_complete, model_folder, models_root, read_source_record
from anchors.models.tiny import tiny_model_names, tiny_record


@dataclass(frozen=True)
class ModelInfo:
    """One row of `anchors models`. `size_bytes` is the cached copy (0 when there is none)."""

    name: str
    kind: str  # 'bundled' | 'tiny' | 'gguf' | other source kinds recorded in the cache
    status: str  # human-readable: 'converted', 'installed, not converted yet', 'built', …
    size_bytes: int
    location: str


def available_models() -> list[ModelInfo]:
    """Bundled aliases first, then the tiny test models, then other models cached under cache/models."""
    rows = [_bundled_info(model) for model in BUNDLED_MODELS.values()]
    rows += [_tiny_info(name) for name in tiny_model_names()]
    listed = {row.name for row in rows}
    rows += [_cached_info(folder) for folder in _cached_folders() if folder.name not in listed]
    return rows


def _bundled_info(model: BundledModel) -> ModelInfo:
    folder = model_folder(model.alias)
    if is_complete(folder):
        return ModelInfo(model.alias, "bundled", "converted", folder_size_bytes(folder), str(folder))
    gguf = bundled_gguf_path(model)
    if gguf is None:
        return ModelInfo(model.alias, "bundled", f"not installed ({model.install_hint})", 0, "")
    return ModelInfo(model.alias, "bundled", "installed, converts on first load (~20 s)", 0, str(gguf))


def _tiny_info(name: str) -> ModelInfo:
    folder = model_folder(name)
    if is_complete(folder, tiny_record(name)):
        return ModelInfo(name, "tiny", "built", folder_size_bytes(folder), str(folder))
    return ModelInfo(name, "tiny", "builds on first load (a few seconds)", 0, str(folder))


def _cached_folders() -> list[Path]:
    root = models_root()
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))


def _cached_info(folder: Path) -> ModelInfo:
    record = read_source_record(folder) or {}
    status = "converted" if is_complete(folder) else "incomplete (safe to delete)"
    kind = str(record.get("kind", "unknown"))
    location = f"{folder} (from {record['source']})" if "source" in record else str(folder)
    return ModelInfo(folder.name, kind, status, folder_size_bytes(folder), location)
