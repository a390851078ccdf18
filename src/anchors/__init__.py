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
    "load_thought_anchors": "anchors.thought_anchors",
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
    "TraceResults": "anchors.results",
    "read_results": "anchors.results",
    "read_trace_results": "anchors.results",
    "write_results": "anchors.results",
    "pooled_sentences": "anchors.results",
    "load_ta_results": "anchors.report.ta",
    "write_report": "anchors.report.html",
    "write_all_figures": "anchors.report.batch",
    "category_table": "anchors.metrics.categories",
    "PrefixRequest": "anchors.rollouts.base",
    "Rollout": "anchors.rollouts.base",
    "SamplingParams": "anchors.rollouts.base",
    "collect_rollouts": "anchors.rollouts.jobs",
    "make_sampler": "anchors.rollouts.factory",
    "resampling_requests": "anchors.rollouts.plan",
    "RolloutStore": "anchors.rollouts.store",
    "BlackBoxConfig": "anchors.methods.blackbox",
    "TraceScores": "anchors.methods.scores",
    "SentenceScore": "anchors.methods.scores",
    "score_trace": "anchors.methods.scores",
    "score_rollouts": "anchors.methods.scores",
    "AdaptiveConfig": "anchors.methods.adaptive",
    "score_trace_adaptive": "anchors.methods.adaptive",
    "load_ta_rollouts": "anchors.methods.ta_rollouts",
    "compat_check": "anchors.methods.compat",
    "SentenceEmbedder": "anchors.models.embeddings",
    "sentence_attention": "anchors.methods.receivers",
    "receiver_heads": "anchors.methods.receivers",
    "ReceiverConfig": "anchors.methods.receivers",
    "suppression_matrix": "anchors.methods.suppression",
    "SuppressionConfig": "anchors.methods.suppression",
    "activation_patching": "anchors.methods.patching",
    "PatchingConfig": "anchors.methods.patching",
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
    from anchors.methods.adaptive import AdaptiveConfig, score_trace_adaptive
    from anchors.methods.blackbox import BlackBoxConfig
    from anchors.methods.compat import compat_check
    from anchors.methods.patching import PatchingConfig, activation_patching
    from anchors.methods.receivers import (
        ReceiverConfig,
        receiver_heads,
        sentence_attention,
    )
    from anchors.methods.scores import (
        SentenceScore,
        TraceScores,
        score_rollouts,
        score_trace,
    )
    from anchors.methods.suppression import SuppressionConfig, suppression_matrix
    from anchors.methods.ta_rollouts import load_ta_rollouts
    from anchors.metrics.categories import category_table
    from anchors.labels import SentenceLabels, label_sentences
    from anchors.models import ModelHandle, PromptTemplate, available_models, load_model
    from anchors.models.embeddings import SentenceEmbedder
    from anchors.report.batch import write_all_figures
    from anchors.report.html import write_report
    from anchors.report.ta import load_ta_results
    from anchors.results import TraceResults, pooled_sentences, read_results, read_trace_results, write_results
    from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams
    from anchors.rollouts.factory import make_sampler
    from anchors.rollouts.generate import generate_traces
    from anchors.rollouts.jobs import collect_rollouts
    from anchors.rollouts.plan import resampling_requests
    from anchors.rollouts.store import RolloutStore
    from anchors.traces.answers import Grade, GradeStatus, extract_answer, grade
    from anchors.traces.jsonl import read_traces, write_traces
    from anchors.traces.records import SamplingSettings, Trace
    from anchors.traces.segment import Sentence, split_sentences
    from anchors.traces.taxonomy import TAG_COLOURS, Taxonomy, load_taxonomy
    from anchors.thought_anchors import load_thought_anchors
    from anchors.traces.token_spans import token_spans
