"""Plan the resampling jobs of a trace (one request per sentence) and run them, fixed or adaptively.

R_i, the rollouts "resampled from sentence i on", continue the trace's prompt plus the thinking before
sentence i (methods.md §4). Default mode cuts the trace's own tokenization at each sentence's first token, so
the prefixes nest exactly and the local engine encodes the trace once; paper mode joins the sentences before
i with single spaces, as the published code does (its prefixes are re-tokenized, so they rarely nest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.store import RolloutStore
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, split_sentences
from anchors.traces.token_spans import encode_with_spans

# (request, its rollouts so far) -> True when the request has enough rollouts
StopRule = Callable[[PrefixRequest, list[Rollout]], bool]


def resample_key(trace_id: str, sentence: int) -> str:
    return f"{trace_id}/resample/{sentence}"


def request_seed(seed: int, trace_id: str, sentence: int) -> int:
    """Each request's own base seed: stable, and different across traces and sentences."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{trace_id}:{sentence}".encode()).digest()[:8], "little") >> 1


def resampling_requests(trace: Trace, *, rollouts: int, seed: int = 0, mode: Mode = "default",
                        template: Any = None, tokenizer: Any = None) -> list[PrefixRequest]:
    """One request per sentence i of the trace's thinking: `rollouts` continuations of prompt + S_1..S_{i-1}.

    The prompt is `trace.prompt`, or `template.render(trace.problem)` when the trace has none. With a
    `tokenizer` (default mode), requests carry exact nested token ids cut from one tokenization of the trace.
    Each request's `meta` holds the sentence index, its text (`chunk_removed`) and the prefix text.
    """
    prompt = _prompt(trace, template)
    sentences = split_sentences(trace.thinking, mode=mode)
    if not sentences:
        raise InputError(f"trace {trace.id!r}: the thinking has no sentences to resample")
    if mode == "paper" or tokenizer is None:
        cuts = [(_paper_prefix(sentences, i) if mode == "paper" else trace.thinking[:s.start], None)
                for i, s in enumerate(sentences)]
    else:
        cuts = _token_cuts(trace, prompt, sentences, tokenizer, getattr(template, "add_special_tokens", False))
    return [PrefixRequest(key=resample_key(trace.id, i), prompt_text=prompt + prefix, n=rollouts,
                          seed=request_seed(seed, trace.id, i), prompt_ids=ids,
                          meta={"trace_id": trace.id, "sentence": i, "chunk_removed": s.text,
                                "prefix_without_chunk": prefix})
            for i, (s, (prefix, ids)) in enumerate(zip(sentences, cuts))]


def _prompt(trace: Trace, template: Any) -> str:
    if trace.prompt is not None:
        return trace.prompt
    if template is None:
        raise InputError(f"trace {trace.id!r} has no prompt; give a template to render one from its problem")
    return template.render(trace.problem)


def _paper_prefix(sentences: Sequence[Any], i: int) -> str:
    return " ".join(s.text for s in sentences[:i])


def _token_cuts(trace: Trace, prompt: str, sentences: Sequence[Any], tokenizer: Any,
                add_special_tokens: bool) -> list[tuple[str, tuple[int, ...]]]:
    """(prefix text, prompt ids) per sentence, cut from one tokenization of prompt + thinking."""
    full = prompt + trace.thinking
    spans = [(len(prompt) + s.start, len(prompt) + s.end) for s in sentences]
    encoded = encode_with_spans(tokenizer, full, spans, add_special_tokens=add_special_tokens)
    cuts = []
    for first, _ in encoded.spans:
        text_end = encoded.offsets[first][0] if first < len(encoded.offsets) else len(full)
        cuts.append((full[len(prompt):max(text_end, len(prompt))], tuple(encoded.input_ids[:first])))
    return cuts


def sample_adaptively(sampler: Sampler, requests: Sequence[PrefixRequest], params: SamplingParams, *,
                      enough: StopRule, step: int, store: str | Path | RolloutStore | None = None,
                      progress: bool = True) -> dict[str, list[Rollout]]:
    """Sample in rounds of `step` rollouts per request, up to each request's `n`, dropping a request as soon
    as `enough(request, rollouts)` says so. Rounds top up the same indices a fixed run would use, so with a
    store, an adaptive run and a fixed one share every rollout they both drew."""
    if step < 1:
        raise ValueError("step must be at least 1")
    results: dict[str, list[Rollout]] = {}
    active = list(requests)
    size = 0
    while active:
        size += step
        round_requests = [replace(r, n=min(size, r.n), indices=None) for r in active]
        got = collect_rollouts(sampler, round_requests, params, store=store, progress=progress)
        results.update(got)
        active = [r for r in active if size < r.n and not enough(r, got[r.key])]
    return {r.key: results[r.key] for r in requests}
