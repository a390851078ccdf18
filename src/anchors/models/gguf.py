"""GGUF → safetensors, once: transformers dequantises a GGUF file into fp32 torch (16–32 s for
SmolLM2-135M); we save that as an ordinary HF folder under cache/models so later loads take ~1 s.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from anchors.errors import ModelLoadError
from anchors.models._errors import one_line_summary
from anchors.models.storage import build_atomically, is_complete, model_folder


def gguf_identity(gguf_path: Path) -> dict[str, Any]:
    """What identifies a GGUF file cheaply: name, size and modification time (no full hash of MBs)."""
    stat = gguf_path.stat()
    return {"gguf_name": gguf_path.name, "gguf_size": stat.st_size, "gguf_mtime_ns": stat.st_mtime_ns}


def gguf_cache_name(gguf_path: Path) -> str:
    """cache/models folder name for an arbitrary GGUF file: its stem plus a short key of its identity."""
    identity = gguf_identity(gguf_path.resolve())
    key = hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", gguf_path.stem).strip("-.") or "model"
    return f"gguf-{stem}-{key}"


def converted_gguf_folder(gguf_path: Path, cache_name: str | None = None) -> Path:
    """The safetensors folder for `gguf_path`, converting it on first use."""
    gguf_path = gguf_path.resolve()
    if not gguf_path.is_file():
        raise ModelLoadError(f"GGUF file not found: {gguf_path}")
    dest = model_folder(cache_name or gguf_cache_name(gguf_path))
    record = {"kind": "gguf", "source": str(gguf_path), **gguf_identity(gguf_path)}
    if is_complete(dest, {key: record[key] for key in ("gguf_name", "gguf_size")}):
        return dest
    return build_atomically(dest, lambda tmp: convert_gguf(gguf_path, tmp), record)


def convert_gguf(gguf_path: Path, out_folder: Path) -> None:
    """Dequantise `gguf_path` into fp32 and save model, tokenizer and generation config to `out_folder`."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # anchors shows its own progress

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as error:  # transformers raises many types for unsupported GGUF content
        raise ModelLoadError(f"could not read GGUF file {gguf_path}: {one_line_summary(error)}") from error
    _forget_quantization(model)
    model.save_pretrained(out_folder)
    tokenizer.save_pretrained(out_folder)


def _forget_quantization(model: Any) -> None:
    # The weights are plain fp32 tensors after loading; the GGUF "quantizer" left on the model
    # would make save_pretrained refuse (or write a config that reloads through GGUF again).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

