"""What the trace-level tests share: prompts from a trace and a thinking prefix, forced answers, on-policy
continuations, and grading of both against the gold answer and against the trace's own final answer.

Prompts, request keys and seeds come from the planner (anchors.rollouts.plan, default mode): the trace's own
`prompt` when it has one (byte-exact), else the model's template, then the thinking prefix. A *forced answer*
closes the thinking right there with the outcome's suffix (`TraceSampler.outcome`; for the default math answer
the template's "\\n</think>\\n\\nTherefore, the final answer is \\boxed{") and samples a few tokens; its
answer is read by the outcome (math: the first boxed answer of suffix + completion). "Matches" compares it with
the trace's own final answer (`Outcome.reference`, `Outcome.agrees`: math-verify equivalence for math answers,
key equality otherwise), "correct" with the gold (target) answer. A
*continuation* samples the thinking on from a prefix (up to `continue_tokens`; the part after the closing tag is
dropped), then forces the answer after it. A prefix that ends where a sentence starts is the black-box methods'
prefix i, so its continuations are R_i and its forced answers F_i: with one rollout store and the same settings,
`anchors score` and these tests sample each of them once.

All sampling goes through `collect_rollouts` with one `Sampler`; `trace_sampler()` is the one place a sampler
is built. Without a store, identical requests are still sampled once per `TraceSampler`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anchors.models.templates import PromptTemplate
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.plan import PromptPlan, merged, plan_prompts, sampling_params, stream
from anchors.outcomes import MathOutcome, Outcome
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences

if TYPE_CHECKING:
    from anchors.models import ModelHandle

EmbedFn = Callable[[Sequence[str]], np.ndarray]  # texts -> one row per text (cosine is taken on normalised rows)


@dataclass(frozen=True)
class AnswerSample:
    """One sampled answer: `key` is its outcome key (None: no answer); `correct` is against the gold answer and
    `matches` against the trace's own final answer (None when that reference is unknown); `status` how the
    outcome read it (ok, no_answer, timeout, error)."""

    key: str | None
    correct: bool | None
    matches: bool | None
    text: str  # what was graded: the forced suffix + the completion
    status: str = "ok"


@dataclass(frozen=True)
class Continuation:
    thinking: str  # the sampled continuation of the thinking (closing tag removed)
    answer: AnswerSample


@dataclass(frozen=True)
class TraceSampler:
    """A sampler plus the prompt conventions of its model: template, exact tokenisation, token counting."""

    sampler: Sampler
    template: PromptTemplate
    count_tokens: Callable[[str], int] | None = None  # length of a piece of thinking, in model tokens
    temperature: float = 0.6
    top_p: float = 0.95
    store: str | Path | None = None
    outcome: Outcome = field(default_factory=MathOutcome)  # what an answer is (anchors.outcomes)
    # per-token log-probabilities of a text continuing a prompt under the model (prompt, text) -> [float];
    # None when the sampler cannot score text (a server backend): the on-policyness of off-policy text is then NaN
    token_logprobs: Callable[[str, str], list[float]] | None = None
    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def identity(self) -> str:
        return self.sampler.identity

    def params(self, max_new_tokens: int, logprobs: bool = False) -> SamplingParams:
        return sampling_params(self.temperature, self.top_p, max_new_tokens,
                               stop_after_boxed_answer=self.outcome.stops_after_boxed_answer, logprobs=logprobs)

    @property
    def forced_suffix(self) -> str:
        return self.outcome.forced_suffix(self.template)

    def plan(self, trace: Trace) -> PromptPlan:
        """The trace's planned prompts (default mode), built once per trace."""
        key = ("plan", trace.id, trace.thinking, trace.prompt)
        if key not in self._memo:
            self._memo[key] = plan_prompts(trace, split_sentences(trace.thinking), self.template, "default",  # type: ignore[assignment]
                                           forced_suffix=self.forced_suffix)
        return self._memo[key]  # type: ignore[return-value]

    def sample(self, streams: Mapping[str, list[PrefixRequest]], start: int, stop: int,
               params: SamplingParams) -> dict[str, list[Rollout]]:
        """Rollouts start .. stop-1 of each named stream (name -> its planned requests), in stream order;
        requests already answered by this TraceSampler are not asked again."""
        wanted = merged([r for requests in streams.values() for r in requests])
        memo_key = lambda r: ("rollouts", r.key, r.prompt_hash(), r.seed, params.fingerprint())  # noqa: E731
        todo = [r for r in wanted if not set(r.wanted_indices()) <= set(self._memo.get(memo_key(r), {}))]
        if todo:
            fresh = collect_rollouts(self.sampler, todo, params, store=self.store, progress=False)
            for request in todo:
                self._memo.setdefault(memo_key(request), {}).update({r.index: r for r in fresh[request.key]})  # type: ignore[union-attr]
        got = {r.key: list(self._memo[memo_key(r)].values()) for r in wanted}  # type: ignore[union-attr]
        return {name: [rollout for _, rollout in stream(got, requests, start, stop)] for name, requests in streams.items()}

def trace_sampler(model: str | ModelHandle, *, temperature: float = 0.6, top_p: float = 0.95, **load_options: Any) -> TraceSampler:
    """Load `model` (unless given loaded) and wrap it with the shared-prefix engine (`make_sampler`)."""
    from anchors.models import load_model
    from anchors.rollouts.factory import make_sampler

    from anchors.models.scoring import continuation_logprobs

    handle = load_model(model, **load_options) if isinstance(model, str) else model
    return TraceSampler(
        sampler=make_sampler(handle), template=handle.template,
        count_tokens=lambda text: len(handle.encode(text)), temperature=temperature, top_p=top_p,
        token_logprobs=lambda prompt, text: continuation_logprobs(handle, prompt, text),
    )  # fmt: skip


def stable_seed(*parts: object) -> int:
    """A seed from any labels (base seed, trace id, test, position), for choices that are not sampling (which
    sentence to corrupt, which trace to swap in): stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def reference_answer(trace: Trace, outcome: Outcome | None = None) -> str | None:
    """The trace's own final answer as the outcome reads it (math: the last boxed answer, else 'the answer is X',
    else the last number)."""
    return (outcome or MathOutcome()).reference(trace).key


def grade_forced(ts: TraceSampler, completion: str, gold: str | None, reference: str | None,
                 trace: Trace | None = None) -> AnswerSample:
    """Grade a forced-answer completion with the sampler's outcome (math: the box the forced suffix opened)."""
    text = ts.forced_suffix + completion
    result = ts.outcome.grade_forced(completion, gold, prompt=text, trace=trace)
    return AnswerSample(key=result.key, correct=result.correct, matches=ts.outcome.agrees(result, reference), text=text,
                        status=result.status.value)


def forced_answers(
    ts: TraceSampler, trace: Trace, prefixes: Mapping[str, str], *, n: int, seed: int, answer_tokens: int
) -> dict[str, list[AnswerSample]]:
    """`n` forced answers after each thinking prefix (name -> prefix text)."""
    plan = ts.plan(trace)
    rollouts = ts.sample({name: plan.force_after(prefix, 0, n, seed) for name, prefix in prefixes.items()}, 0, n,
                         ts.params(answer_tokens))
    gold, reference = trace.gold_answer, reference_answer(trace, ts.outcome)
    return {name: [grade_forced(ts, r.text, gold, reference, trace) for r in rows] for name, rows in rollouts.items()}


def continuations(
    ts: TraceSampler, trace: Trace, prefixes: Mapping[str, str], *, n: int, seed: int,
    continue_tokens: int, answer_tokens: int, start: int = 0,
) -> dict[str, list[Continuation]]:
    """Continuations start .. start+n-1 of each thinking prefix (name -> prefix text), each followed by a forced
    answer."""
    plan, close = ts.plan(trace), ts.template.think_close
    thoughts = ts.sample({name: plan.continue_after(prefix, start, start + n, seed) for name, prefix in prefixes.items()},
                         start, start + n, ts.params(continue_tokens))
    texts = {(name, k): _without_close(r.text, close) for name, rows in thoughts.items() for k, r in enumerate(rows)}
    answer_prefixes = {f"{name}#{k}": prefixes[name] + text for (name, k), text in texts.items()}
    answers = forced_answers(ts, trace, answer_prefixes, n=1, seed=seed, answer_tokens=answer_tokens)
    return {name: [Continuation(texts[name, k], answers[f"{name}#{k}"][0]) for k in range(len(rows))]
            for name, rows in thoughts.items()}


def _without_close(text: str, close: str) -> str:
    cut = text.find(close)
    return text if cut < 0 else text[:cut]


def answer_rates(samples: Sequence[AnswerSample]) -> dict[str, float | int]:
    """n, answered, match rate (vs the trace's answer) and accuracy (vs gold) over answered samples."""
    answered = [s for s in samples if s.key is not None]
    matches = [s.matches for s in answered if s.matches is not None]
    correct = [s.correct for s in answered if s.correct is not None]
    return {
        "n_samples": len(samples), "n_answered": len(answered),
        "match_rate": sum(matches) / len(matches) if matches else float("nan"),
        "accuracy": sum(correct) / len(correct) if correct else float("nan"),
    }  # fmt: skip


def compared_rates(first: str, a: Sequence[AnswerSample], second: str, b: Sequence[AnswerSample]) -> dict[str, Any]:
    """The row fields of a test that compares two conditions' answers: `<condition>_n_answered`, `_match_rate`,
    `_accuracy` and `_answers` for each of the two."""
    out: dict[str, Any] = {}
    for name, samples in ((first, a), (second, b)):
        rates = answer_rates(samples)
        out |= {f"{name}_n_answered": int(rates["n_answered"]), f"{name}_match_rate": rates["match_rate"],
                f"{name}_accuracy": rates["accuracy"], f"{name}_answers": [s.key for s in samples]}
    return out


def answer_keys(samples: Sequence[AnswerSample]) -> list[str]:
    """The outcome keys of the samples that gave an answer."""
    return [s.key for s in samples if s.key is not None]


def embed_function(embed: EmbedFn | Any) -> EmbedFn:
    """A function texts -> vectors, or an object with `.embed(texts)` (the black-box `Embedder`), as the function."""
    return embed.embed if hasattr(embed, "embed") else embed


def unit_rows(vectors: Any) -> np.ndarray:
    """Each row scaled to length 1, so a matrix product of two of them is their cosines."""
    array = np.asarray(vectors, dtype=np.float64)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def cosines(embed: EmbedFn, texts: Sequence[str], target: str) -> np.ndarray:
    """Cosine of each text's embedding with the target's (embedded in one call)."""
    if not texts:
        return np.zeros(0)
    vectors = unit_rows(embed([*texts, target]))
    return vectors[:-1] @ vectors[-1]
