"""anchors: which sentences of a reasoning trace cause the final answer — and does the trace cause it at all?

`import anchors` is cheap: nothing heavy (torch, transformers, sentence-transformers) is imported until
one of the names below is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first attribute access)
_EXPORTS: dict[str, str] = {
    "Trace": "anchors.traces.records",
    "SamplingSettings": "anchors.traces.records",
    "read_traces": "anchors.traces.jsonl",
    "write_traces": "anchors.traces.jsonl",
    "load_thought_anchors": "anchors.traces.thought_anchors",
    "Sentence": "anchors.traces.segment",
    "split_sentences": "anchors.traces.segment",
    "token_spans": "anchors.traces.token_spans",
    "Grade": "anchors.traces.answers",
    "GradeStatus": "anchors.traces.answers",
    "extract_answer": "anchors.traces.answers",
    "grade": "anchors.traces.answers",
    "load_model": "anchors.models",
    "ModelHandle": "anchors.models",
    "PromptTemplate": "anchors.models",
    "available_models": "anchors.models",
    "generate_traces": "anchors.rollouts.generate",
    "label_sentences": "anchors.labels",
    "SentenceLabels": "anchors.labels",
    "Taxonomy": "anchors.traces.taxonomy",
    "load_taxonomy": "anchors.traces.taxonomy",
    "TAG_COLOURS": "anchors.traces.taxonomy",
    "AnchorsError": "anchors.errors",
    "InputError": "anchors.errors",
    "ModelLoadError": "anchors.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anchors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # static type checkers and IDEs see the real names
    from anchors.errors import AnchorsError, InputError, ModelLoadError
    from anchors.labels import SentenceLabels, label_sentences
    from anchors.models import ModelHandle, PromptTemplate, available_models, load_model
    from anchors.rollouts.generate import generate_traces
    from anchors.traces.answers import Grade, GradeStatus, extract_answer, grade
    from anchors.traces.jsonl import read_traces, write_traces
    from anchors.traces.records import SamplingSettings, Trace
    from anchors.traces.segment import Sentence, split_sentences
    from anchors.traces.taxonomy import TAG_COLOURS, Taxonomy, load_taxonomy
    from anchors.traces.thought_anchors import load_thought_anchors
    from anchors.traces.token_spans import token_spans
