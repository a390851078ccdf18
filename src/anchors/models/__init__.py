"""Models: the only part of anchors that imports transformers / transformer_lens.

Loading (bundled SmolLM2, tiny test models, GGUF files, local folders, hub names), prompt
templates, and the TransformerLens bridge (`ModelHandle.bridge()`). Importing
this package is cheap: torch and transformers load on first use, transformer_lens on the first
`bridge()` call.
"""

from __future__ import annotations

from anchors.models.bundled import DEFAULT_MODEL
from anchors.models.handle import ModelHandle
from anchors.models.listing import ModelInfo, available_models
from anchors.models.loading import load_model
from anchors.models.templates import TEMPLATE_NAMES, PromptTemplate
from anchors.models.tiny import build_tiny_model

__all__ = [
    "DEFAULT_MODEL",
    "TEMPLATE_NAMES",
    "ModelHandle",
    "ModelInfo",
    "PromptTemplate",
    "available_models",
    "build_tiny_model",
    "load_model",
]
