"""Sentence function tags (plan generation, uncertainty management, active computation, …).

Two labellers behind one entry point, `label_sentences`: an offline classifier (the default; fitted on a
labelled set written for this project and shipped with the package) and an LLM labeller for any
OpenAI-compatible chat endpoint. Taxonomies are data (`anchors.traces.taxonomy`).

Layer: imports only `anchors.traces` (and `anchors.paths`/`errors`); methods, viz and the CLI import it.
"""

from anchors.labels.api import authors_labels, label_sentences, label_traces, label_with, resolve_labeller
from anchors.labels.dataset import LabelledSentence, LabelledTrace, bundled_labelled, read_labelled
from anchors.labels.endpoint import EndpointConfig, EndpointError
from anchors.labels.llm import PROMPT_VERSION, LLMConfig, LLMLabeller
from anchors.labels.offline import OfflineConfig, OfflineTagger, fit_offline
from anchors.labels.result import LabelWarning, SentenceLabels

__all__ = [
    "PROMPT_VERSION", "EndpointConfig", "EndpointError", "LLMConfig", "LLMLabeller", "LabelWarning",
    "LabelledSentence", "LabelledTrace", "OfflineConfig", "OfflineTagger", "SentenceLabels", "authors_labels", "bundled_labelled",
    "fit_offline", "label_sentences", "label_traces", "label_with", "read_labelled", "resolve_labeller",
]
