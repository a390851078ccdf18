"""Every request anchors samples from a trace, planned one way: prompts, keys and seeds (resample, score, causality).

Prompts (methods.md §1–§2):
* paper mode: the raw prompt of the paper; the prefix of sentence i is the authors' — chunks 1..i joined by
  single spaces, then every occurrence of chunk i removed and the result stripped — and forced answers use
  the published suffix (typo included). n prefixes (the last sentence gets 0, as published).
* default mode: the trace's own prompt (or the model's template); the prefix of sentence i is the thinking text
  up to where sentence i starts, byte for byte, plus one more prefix holding the whole thinking (so the last
  sentence is scored too); forced answers append the template's suffix to the prefix.

Keys and seeds: a request continues one prompt, named `<trace id>/<kind>/<position>/<block>`: `kind` is what is
sampled (`resample`: the thinking continues; `forced`: the answer right after the prefix; `close`, …), `position`
is the prefix's sentence index when the prefix ends at a sentence boundary, else `h` + a hash of the prefix text.
Rollouts of one prompt form a stream, asked for in blocks of ROLLOUT_BLOCK, and a request's seed is
`request_seed(run seed, key)`. So the same trace, prefix, kind, parameters and seed always give the same store
rows, whichever command asks (resample, score, analyze or a causality test): each rollout is sampled once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from anchors.models.templates import PAPER_FORCED_ANSWER_SUFFIX, PromptTemplate, paper_template
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, Sentence

# Runs of different sizes (a fixed run, adaptive rounds, a re-run, another command) ask for the same blocks of a
# stream, so they share rollouts, and through the rollout store a re-run samples nothing new.
ROLLOUT_BLOCK = 10


@dataclass(frozen=True)
class PromptPlan:
    """The prompt text before the thinking, each prefix's thinking text, and the forced-answer suffix."""

    trace_id: str
    header: str
    prefixes: tuple[str, ...]
    forced_suffix: str
    think_close: str
    _positions: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        positions: dict[str, int] = {}
        for i, prefix in enumerate(self.prefixes):
            positions.setdefault(prefix, i)  # paper mode can repeat a prefix: the first index names it
        object.__setattr__(self, "_positions", positions)

    def resample_prompt(self, i: int) -> str:
        return self.header + self.prefixes[i]

    def forced_prompt(self, i: int) -> str:
        return self.header + self.prefixes[i] + self.forced_suffix

    def position(self, prefix: str) -> str:
        """The name of a thinking prefix in request keys: its sentence index, or a hash of its text."""
        index = self._positions.get(prefix)
        return str(index) if index is not None else "h" + hashlib.sha256(prefix.encode()).hexdigest()[:16]

    def requests(self, kind: str, position: str, prompt: str, start: int, stop: int, seed: int,
                 **meta: object) -> list[PrefixRequest]:
        """Rollouts start .. stop-1 of the stream `<trace>/<kind>/<position>` of `prompt`, in blocks."""
        out = []
        for block in range(start // ROLLOUT_BLOCK, -(-stop // ROLLOUT_BLOCK)):
            key = f"{self.trace_id}/{kind}/{position}/{block}"
            first = block * ROLLOUT_BLOCK
            wanted = tuple(k - first for k in range(max(start, first), min(stop, first + ROLLOUT_BLOCK)))
            n = min(stop - first, ROLLOUT_BLOCK)
            out.append(PrefixRequest(key=key, prompt_text=prompt, n=n, seed=request_seed(seed, key),
                                     indices=None if wanted == tuple(range(n)) else wanted,
                                     meta={"trace_id": self.trace_id, "kind": kind, "position": position,
                                           "block": block, **meta}))
        return out

    def resample(self, i: int, start: int, stop: int, seed: int, **meta: object) -> list[PrefixRequest]:
        """R_i: continuations of the thinking before sentence i (prefix i)."""
        return self.requests("resample", str(i), self.resample_prompt(i), start, stop, seed, prefix=i, **meta)

    def forced(self, i: int, start: int, stop: int, seed: int, **meta: object) -> list[PrefixRequest]:
        """F_i: the answer forced right after prefix i."""
        return self.requests("forced", str(i), self.forced_prompt(i), start, stop, seed, prefix=i, **meta)

    def continue_after(self, prefix: str, start: int, stop: int, seed: int) -> list[PrefixRequest]:
        """Continuations of any thinking prefix (R_i when it is prefix i)."""
        return self.requests("resample", self.position(prefix), self.header + prefix, start, stop, seed)

    def force_after(self, prefix: str, start: int, stop: int, seed: int) -> list[PrefixRequest]:
        """The answer forced after any thinking prefix (F_i when it is prefix i)."""
        return self.requests("forced", self.position(prefix), self.header + prefix + self.forced_suffix, start, stop, seed)


def plan_prompts(trace: Trace, sentences: Sequence[Sentence], template: PromptTemplate, mode: Mode,
                 forced_suffix: str | None = None) -> PromptPlan:
    """Prompts for resampling from every sentence of `trace` (see the module docstring). `forced_suffix`: what
    forces an answer after a prefix (the outcome's, `Outcome.forced_suffix`); None: the math answer's."""
    if mode == "paper":
        chunks = [s.text for s in sentences]
        prefixes = tuple(" ".join(chunks[: i + 1]).replace(chunks[i], "").strip() for i in range(len(chunks)))
        paper = paper_template()
        return PromptPlan(trace.id, paper.render(trace.problem), prefixes, forced_suffix or PAPER_FORCED_ANSWER_SUFFIX,
                          paper.think_close)
    header = trace.prompt if trace.prompt is not None else template.render(trace.problem)
    prefixes = tuple(trace.thinking[: s.start] for s in sentences) + (trace.thinking,)
    return PromptPlan(trace.id, header, prefixes, forced_suffix or template.forced_answer_suffix, template.think_close)


def chosen_sentences(trace_id: str, n_sentences: int, sentences: Sequence[int] | None) -> list[int]:
    """The sentence indices of `sentences` this trace has (all for None): indices past its last sentence are
    left out, so one `--sentences` list serves traces of different lengths; none left is an InputError."""
    from anchors.errors import InputError

    if sentences is None:
        return list(range(n_sentences))
    chosen = sorted({i for i in sentences if 0 <= i < n_sentences})
    if not chosen:
        raise InputError(f"trace {trace_id!r}: none of the sentences asked for exist (it has {n_sentences}, "
                         f"numbered from 0)")
    return chosen


def needed_prefixes(n_prefixes: int, chosen: Sequence[int]) -> list[int]:
    """The prefixes that scoring the `chosen` sentences needs: i and i + 1 for each, since every metric of
    sentence i compares R_i with R_{i+1} (F_i with F_{i+1}). A chosen sentence's numbers are thus exactly
    those of a run over every sentence (same streams, same seeds); a sentence left out has none, and a gap in
    the list costs nothing but the prefixes its neighbours need."""
    return sorted({p for i in chosen for p in (i, i + 1) if p < n_prefixes})


def request_seed(base_seed: int, key: str) -> int:
    """A request's seed from the run's seed and the request's key: stable across runs, machines and batching."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{key}".encode()).digest()[:8], "little") & (2**63 - 1)


def sampling_params(temperature: float, top_p: float, max_new_tokens: int, *, stop_after_boxed_answer: bool = True,
                    logprobs: bool = False) -> SamplingParams:
    """The parameters of every planned request (resampled continuations and forced answers alike): one form, so
    two commands that ask for the same rollouts with the same settings share them in the store.
    `stop_after_boxed_answer`: the outcome's (`Outcome.stops_after_boxed_answer`; on for math answers)."""
    return SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                          stop_after_boxed_answer=stop_after_boxed_answer, logprobs=logprobs)


def stream(got: Mapping[str, list[Rollout]], requests: Sequence[PrefixRequest], start: int,
           stop: int) -> list[tuple[int, Rollout]]:
    """(position in the stream, rollout) for positions start .. stop-1 of the stream `requests` were cut from."""
    out = []
    for request in requests:
        first = int(request.meta["block"]) * ROLLOUT_BLOCK  # type: ignore[call-overload]
        for rollout in got.get(request.key, []):
            if start <= first + rollout.index < stop:
                out.append((first + rollout.index, rollout))
    return sorted(out, key=lambda item: item[0])


def merged(requests: Sequence[PrefixRequest]) -> list[PrefixRequest]:
    """One request per key (a job's keys must be unique): rollouts asked for under one key by several callers
    (e.g. two resilience chains reading rollouts 0 and 1 of one stream) become one request for all of them."""
    by_key: dict[str, PrefixRequest] = {}
    for request in requests:
        seen = by_key.get(request.key)
        if seen is None:
            by_key[request.key] = request
            continue
        n = max(seen.n, request.n)
        wanted = tuple(sorted(set(seen.wanted_indices()) | set(request.wanted_indices())))
        by_key[request.key] = PrefixRequest(key=seen.key, prompt_text=seen.prompt_text, n=n, seed=seen.seed,
                                            prompt_ids=seen.prompt_ids, meta=seen.meta,
                                            indices=None if wanted == tuple(range(n)) else wanted)
    return list(by_key.values())


def resampling_requests(trace: Trace, *, rollouts: int, seed: int = 0, mode: Mode = "default",
                        template: PromptTemplate | None = None, sentences: Sequence[int] | None = None) -> list[PrefixRequest]:
    """The R_i requests of every prefix of a trace (`rollouts` each; with `sentences`, only the prefixes scoring
    them needs, see `needed_prefixes`): what `anchors resample` samples and `anchors score` then reads back from
    the store. `meta` holds the prefix index, the removed sentence (`chunk_removed`, empty for default mode's
    prefix after the whole thinking) and the prefix text (`prefix_without_chunk`)."""
    from anchors.errors import InputError
    from anchors.traces.segment import split_sentences

    split = split_sentences(trace.thinking, mode=mode)
    if not split:
        raise InputError(f"trace {trace.id!r}: the thinking has no sentences to resample")
    if trace.prompt is None and template is None and mode != "paper":
        raise InputError(f"trace {trace.id!r} has no prompt; give a template to render one from its problem")
    plan = plan_prompts(trace, split, template, mode)  # type: ignore[arg-type]
    chosen = chosen_sentences(trace.id, len(split), sentences)
    return [request for i in needed_prefixes(len(plan.prefixes), chosen)
            for request in plan.resample(i, 0, rollouts, seed, prefix_without_chunk=plan.prefixes[i],
                                         chunk_removed=split[i].text if i < len(split) else "")]
