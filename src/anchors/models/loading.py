"""load_model: a name or a path → a ModelHandle.

Sources, recognised in this order: a bundled alias ('smollm2-135m'), a tiny test model
('tiny-qwen2', 'tiny-llama'), a .gguf file, a local HF folder (config.json), a hub name.
Whatever the source, the model is loaded from a local folder of safetensors, so the
tokenizer can always be re-read from disk (the TransformerLens bridge needs that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchors.errors import ModelLoadError
from anchors.models._errors import one_line_summary
from anchors.models.bundled import BUNDLED_MODELS, bundled_folder
from anchors.models.gguf import converted_gguf_folder
from anchors.models.handle import ModelHandle
from anchors.models.hub import hub_snapshot_folder, looks_like_repo_id
from anchors.models.templates import PromptTemplate, make_template
from anchors.models.tiny import build_tiny_model, resolve_tiny_name

_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}


@dataclass(frozen=True)
class ResolvedSource:
    """A local folder to load from, the name to show, and how we got there."""

    folder: Path
    name: str
    description: str


def load_model(
    name_or_path: str | Path,
    *,
    device: str | Any | None = None,
    dtype: str | Any | None = None,
    template: str | PromptTemplate | None = None,
) -> ModelHandle:
    """Load a causal LM for sampling and white-box analysis.

    `name_or_path`: 'smollm2-135m' (bundled, converted once to cache/models), 'tiny-qwen2' /
    'tiny-llama' (random test models), a .gguf file, a folder with config.json and
    *.safetensors, or a hub name (from the local HF cache, or downloaded when a hub is reachable).
    `device`: 'cpu', 'cuda', 'cuda:1'; default CUDA when available. `dtype`: 'float32' (default
    on CPU), 'bfloat16' (default on CUDA), 'float16'. `template`: 'paper', 'r1-distill',
    'qwen3', 'chat', a PromptTemplate, or None to choose from the model's name and tokenizer.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = resolve_source(str(name_or_path))
    hf_model = _load_hf_model(source.folder, torch_device, torch_dtype)
    tokenizer = _load_tokenizer(source.folder)
    config = hf_model.config.get_text_config()
    return ModelHandle(
        name=source.name,
        hf_model=hf_model,
        tokenizer=tokenizer,
        template=_template_for(template, source.name, hf_model.config, tokenizer),
        device=torch_device,
        dtype=torch_dtype,
        source=source.description,
        path=source.folder,
        n_layers=int(config.num_hidden_layers),
        n_heads=int(config.num_attention_heads),
        context_length=int(getattr(config, "max_position_embeddings", 0) or tokenizer.model_max_length),
    )


def resolve_source(name_or_path: str) -> ResolvedSource:
    """Find (building or converting if needed) the local folder behind a name or path."""
    key = name_or_path.strip()
    if key.lower() in BUNDLED_MODELS:
        folder, description = bundled_folder(key.lower())
        return ResolvedSource(folder, key.lower(), description)
    tiny = resolve_tiny_name(key) if key.lower().startswith("tiny-") else None
    if tiny is not None:
        folder = build_tiny_model(tiny)
        return ResolvedSource(folder, tiny, f"tiny random test model → {folder}")
    path = Path(key).expanduser()
    if path.suffix.lower() == ".gguf":
        folder = converted_gguf_folder(path)
        return ResolvedSource(folder, path.stem, f"GGUF {path} → {folder}")
    if path.is_file():
        raise ModelLoadError(f"{path} is a file but not a .gguf; pass a .gguf file or a model folder")
    if path.is_dir():
        return _local_folder_source(path)
    return _hub_source(key)


def _local_folder_source(path: Path) -> ResolvedSource:
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is a folder but has no config.json: not a Hugging Face model folder")
    return ResolvedSource(path.resolve(), path.resolve().name, f"local folder {path.resolve()}")


def _hub_source(name: str) -> ResolvedSource:
    if not looks_like_repo_id(name):
        raise ModelLoadError(
            f"{name!r} is not a file, a folder, a bundled alias ({', '.join(BUNDLED_MODELS)}), "
            "a tiny test model (tiny-qwen2, tiny-llama) or a hub name like org/model"
        )
    folder = hub_snapshot_folder(name)
    return ResolvedSource(folder, name, f"hub {name} → {folder}")


def resolve_device(device: str | Any | None) -> Any:
    """None/'auto' → CUDA when available, else CPU; otherwise what was asked, checked."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ModelLoadError(f"unknown device {device!r}: {one_line_summary(error)}") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but CUDA is not available here; use device='cpu'")
    return chosen


def resolve_dtype(dtype: str | Any | None, device: Any) -> Any:
    """None → float32 on CPU, bfloat16 on CUDA (float16 where bf16 is unsupported)."""
    import torch

    if dtype is None:
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use 'float32', 'bfloat16' or 'float16'")
    return getattr(torch, name)


def _load_hf_model(folder: Path, device: Any, dtype: Any) -> Any:
    import transformers

    # transformers' own "Loading weights" bars would interleave with anchors' (a 0.1 s load needs none)
    transformers.utils.logging.disable_progress_bar()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder,
            dtype=dtype,
            # Eager attention: white-box hooks need the real attention pattern (sdpa returns none).
            attn_implementation="eager",
            # Security: never unpickle *.bin weights.
            use_safetensors=True,
            local_files_only=True,
        )
    except Exception as error:  # transformers raises OSError/ValueError/… for unusable folders
        raise ModelLoadError(f"could not load the model in {folder}: {one_line_summary(error)}") from error
    return model.to(device).eval()


def _load_tokenizer(folder: Path) -> Any:
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as error:
        raise ModelLoadError(f"could not load the tokenizer in {folder}: {one_line_summary(error)}") from error
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"the tokenizer in {folder} is not a fast tokenizer; offset mappings need one")
    return tokenizer


def _template_for(template: str | PromptTemplate | None, name: str, config: Any, tokenizer: Any) -> PromptTemplate:
    try:
        return make_template(template, name, config, tokenizer)
    except ValueError as error:
        raise ModelLoadError(str(error)) from error
