"""`label_sentences`: the one entry point for function tags, whichever labeller does the work.

The labeller is chosen by `labeller=`: "offline" (the bundled classifier, or `tagger=` a fitted .npz), "llm" (an
OpenAI-compatible endpoint from `llm=` or $ANCHORS_LABEL_BASE_URL), or "auto" (the default): the LLM when an
endpoint is configured, else offline. A ready `OfflineTagger` or `LLMLabeller` may be passed instead of a name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal, Union

from anchors.errors import InputError
from anchors.labels.dataset import labelled_trace
from anchors.labels.llm import BASE_URL_ENV, LLMConfig, LLMLabeller
from anchors.labels.offline import OfflineTagger
from anchors.labels.result import SentenceLabels
from anchors.thought_anchors import ProblemFolder
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, Sentence, split_sentences
from anchors.traces.taxonomy import Taxonomy, load_taxonomy

Labeller = Union[OfflineTagger, LLMLabeller]
LabellerChoice = Literal["auto", "offline", "llm"]
Labellable = Union[Trace, str, Sequence[Sentence], Sequence[str]]


def label_sentences(
    trace_or_sentences: Labellable,
    *,
    labeller: LabellerChoice | Labeller = "auto",
    taxonomy: Taxonomy | str | Path | None = None,
    mode: Mode = "default",
    problem: str | None = None,
    trace_id: str | None = None,
    llm: LLMConfig | None = None,
    tagger: str | Path | None = None,
) -> SentenceLabels:
    """Function tags for each sentence of one trace (`.tags`: the primary tag per sentence, in order).

    `trace_or_sentences`: a `Trace` (its thinking is split with `mode`; its problem and id are used), a thinking
    text (split with `mode`), or the sentences themselves (`Sentence` objects or strings, used as given, so tags
    line up with scores computed on the same list).
    """
    texts, problem, trace_id = _inputs(trace_or_sentences, mode, problem, trace_id)
    chosen = resolve_labeller(labeller, taxonomy=taxonomy, llm=llm, tagger=tagger)
    return label_with(chosen, texts, problem=problem, trace_id=trace_id)


def label_traces(
    traces: Iterable[Trace],
    *,
    labeller: LabellerChoice | Labeller = "auto",
    taxonomy: Taxonomy | str | Path | None = None,
    mode: Mode = "default",
    llm: LLMConfig | None = None,
    tagger: str | Path | None = None,
    progress: Callable[[Sequence[Trace], str], Iterable[Trace]] | None = None,
) -> Iterator[SentenceLabels]:
    """`label_sentences` for many traces with one labeller (loaded once); `progress` wraps the iteration."""
    chosen = resolve_labeller(labeller, taxonomy=taxonomy, llm=llm, tagger=tagger)
    items = list(traces)
    texts = [[s.text for s in split_sentences(trace.thinking, mode=mode)] for trace in items]
    if isinstance(chosen, OfflineTagger):
        chosen.embed_ahead([text for sentences in texts for text in sentences])
    for trace, sentences in zip(progress(items, "labelling") if progress else items, texts):
        yield label_with(chosen, sentences, problem=trace.problem, trace_id=trace.id)


def authors_labels(problem_dir: str | Path | ProblemFolder) -> SentenceLabels | None:
    """The Thought Anchors authors' own tags for one problem folder (chunks_labeled.json), None if it has none.

    Their sentences are the paper-mode split of the trace, so these line up with `split_sentences(..., mode="paper")`.
    """
    folder = problem_dir if isinstance(problem_dir, ProblemFolder) else ProblemFolder(problem_dir, Path(problem_dir).parent)
    if not folder.has_chunks():
        return None
    trace = labelled_trace(folder)
    return SentenceLabels(trace_id=trace.id, sentences=tuple(trace.texts),
                          all_tags=tuple(tuple(s.tags) for s in trace.sentences), taxonomy=load_taxonomy(None),
                          labeller="thought-anchors-authors",
                          depends_on=tuple(tuple(d for d in s.depends_on if 0 <= d < i) for i, s in enumerate(trace.sentences)))


def label_with(labeller: Labeller, texts: Sequence[str], *, problem: str | None = None,
               trace_id: str | None = None) -> SentenceLabels:
    """Label already-split sentence texts with a resolved labeller."""
    if isinstance(labeller, LLMLabeller):
        return labeller.label(texts, problem=problem, trace_id=trace_id)
    probs = labeller.predict_proba(texts, problem)
    best = probs.argmax(axis=1) if len(texts) else []
    return SentenceLabels(trace_id=trace_id, sentences=tuple(texts), all_tags=tuple((labeller.classes[i],) for i in best),
                          taxonomy=labeller.taxonomy, labeller=labeller.name,
                          confidence=tuple(float(probs[row, i]) for row, i in enumerate(best)))


def resolve_labeller(labeller: LabellerChoice | Labeller = "auto", *, taxonomy: Taxonomy | str | Path | None = None,
                     llm: LLMConfig | None = None, tagger: str | Path | None = None) -> Labeller:
    """The labeller `label_sentences` would use for these arguments."""
    if isinstance(labeller, (OfflineTagger, LLMLabeller)):
        return labeller
    if labeller not in ("auto", "offline", "llm"):
        raise InputError(f"labeller must be 'auto', 'offline' or 'llm', not {labeller!r}")
    config = llm or (None if labeller == "offline" else LLMConfig.from_env())
    if labeller == "llm" and config is None:
        raise InputError(f"the LLM labeller needs an endpoint: set ${BASE_URL_ENV} (e.g. http://127.0.0.1:8080/v1) or pass llm=LLMConfig(...)")
    if config is not None and labeller != "offline":
        return LLMLabeller(config, taxonomy)
    return _offline(taxonomy, tagger)


def _offline(taxonomy: Taxonomy | str | Path | None, tagger: str | Path | None) -> OfflineTagger:
    model = OfflineTagger.load(tagger) if tagger is not None else _bundled()
    if taxonomy is not None and load_taxonomy(taxonomy).names != model.taxonomy.names:
        raise InputError(
            f"the offline tagger was fitted for taxonomy {model.taxonomy.name!r}, not {load_taxonomy(taxonomy).name!r}: "
            "fit one for it with `anchors label --fit LABELLED --taxonomy FILE` and pass it as tagger="
        )
    return model


@lru_cache(maxsize=1)
def _bundled() -> OfflineTagger:
    return OfflineTagger.bundled()


def _inputs(value: Labellable, mode: Mode, problem: str | None, trace_id: str | None) -> tuple[list[str], str | None, str | None]:
    if isinstance(value, Trace):
        texts = [s.text for s in split_sentences(value.thinking, mode=mode)]
        return texts, problem or value.problem, trace_id or value.id
    if isinstance(value, str):
        return [s.text for s in split_sentences(value, mode=mode)], problem, trace_id
    texts = [item.text if isinstance(item, Sentence) else item for item in value]
    if not all(isinstance(t, str) for t in texts):
        raise InputError("label_sentences takes a Trace, a thinking text, or a list of Sentence objects or strings")
    return texts, problem, trace_id
