"""What the trace-level tests share: prompts from a trace and a thinking prefix, forced answers, on-policy
continuations, and grading of both against the gold answer and against the trace's own final answer.

Prompts: the trace's own `prompt` when it has one (byte-exact), else the model's template, then the thinking
prefix. A *forced answer* closes the thinking right there with the template's suffix
("\\n</think>\\n\\nTherefore, the final answer is \\boxed{") and samples a few tokens; its answer is the first
boxed answer of suffix + completion. A *continuation* samples the thinking on from a prefix (until the closing
tag or `continue_tokens`), then forces the answer after it.

All sampling goes through `collect_rollouts` with one `Sampler`; `trace_sampler()` is the one place a sampler
is built. Identical requests (prompt, n, seed, parameters) are sampled once per `TraceSampler`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchors.models.templates import PromptTemplate
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.traces.answers import extract_answer, grade
from anchors.traces.records import Trace

if TYPE_CHECKING:
    from anchors.models import ModelHandle


@dataclass(frozen=True)
class AnswerSample:
    """One sampled answer: `key` is its normalised form (None: no closed box); `correct` is against the gold
    answer and `matches` against the trace's own final answer (None when that reference is unknown)."""

    key: str | None
    correct: bool | None
    matches: bool | None
    text: str  # what was graded: the forced suffix + the completion


@dataclass(frozen=True)
class Continuation:
    thinking: str  # the sampled continuation of the thinking (closing tag removed)
    answer: AnswerSample


@dataclass(frozen=True)
class TraceSampler:
    """A sampler plus the prompt conventions of its model: template, exact tokenisation, token counting."""

    sampler: Sampler
    template: PromptTemplate
    encode: Callable[[str], list[int]] | None = None  # prompt text -> ids (BOS as the template needs)
    count_tokens: Callable[[str], int] | None = None  # length of a piece of thinking, in model tokens
    temperature: float = 0.6
    top_p: float = 0.95
    store: str | Path | None = None
    _memo: dict[tuple[Any, ...], list[Rollout]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def identity(self) -> str:
        return self.sampler.identity

    def params(self, max_new_tokens: int, stop: tuple[str, ...] = ()) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_new_tokens=max_new_tokens,
                              stop=stop, stop_after_boxed_answer=False)

    def sample(self, prompts: Mapping[str, str], n: int, seeds: Mapping[str, int], params: SamplingParams) -> dict[str, list[Rollout]]:
        """`n` rollouts of each prompt (key -> prompt text), reusing identical earlier requests."""
        memo_keys = {key: (prompt, n, seeds[key], params.fingerprint()) for key, prompt in prompts.items()}
        todo = [PrefixRequest(key=key, prompt_text=prompt, n=n, seed=seeds[key], prompt_ids=self._ids(prompt))
                for key, prompt in prompts.items() if memo_keys[key] not in self._memo]
        if todo:
            fresh = collect_rollouts(self.sampler, todo, params, store=self.store, progress=False)
            for request in todo:
                self._memo[memo_keys[request.key]] = fresh[request.key]
        return {key: self._memo[memo_keys[key]] for key in prompts}

    def _ids(self, prompt: str) -> tuple[int, ...] | None:
        return tuple(self.encode(prompt)) if self.encode is not None else None


def trace_sampler(model: str | ModelHandle, *, temperature: float = 0.6, top_p: float = 0.95, **load_options: Any) -> TraceSampler:
    """Load `model` (unless given loaded) and wrap it with the shared-prefix engine (`make_sampler`)."""
    from anchors.models import load_model
    from anchors.rollouts.factory import make_sampler

    handle = load_model(model, **load_options) if isinstance(model, str) else model
    special = handle.template.add_special_tokens
    return TraceSampler(
        sampler=make_sampler(handle), template=handle.template,
        encode=lambda text: handle.encode(text, add_special_tokens=special),
        count_tokens=lambda text: len(handle.encode(text)), temperature=temperature, top_p=top_p,
    )  # fmt: skip


def stable_seed(*parts: object) -> int:
    """A seed from any labels (base seed, trace id, test, position): stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def header(trace: Trace, template: PromptTemplate) -> str:
    """The exact text before the thinking: the trace's prompt, else the template rendering its problem."""
    return trace.prompt if trace.prompt is not None else template.render(trace.problem)


def reference_answer(trace: Trace) -> str | None:
    """The trace's own final answer (last boxed answer, else 'the answer is X', else the last number)."""
    return extract_answer(trace.answer_text, "auto")


def grade_forced(ts: TraceSampler, completion: str, gold: str | None, reference: str | None) -> AnswerSample:
    """Grade a forced-answer completion: its answer is the box the forced suffix opened."""
    text = ts.template.forced_answer_suffix + completion
    against_gold = grade(text, gold, method="boxed_first")
    matches = grade(text, reference, method="boxed_first").correct if reference is not None else None
    return AnswerSample(key=against_gold.key, correct=against_gold.correct, matches=matches, text=text)


def forced_answers(
    ts: TraceSampler, trace: Trace, prefixes: Mapping[str, str], *, n: int, seed: int, answer_tokens: int
) -> dict[str, list[AnswerSample]]:
    """`n` forced answers after each thinking prefix (key -> prefix text)."""
    head, suffix = header(trace, ts.template), ts.template.forced_answer_suffix
    prompts = {key: head + prefix.rstrip() + suffix if prefix.strip() else head + suffix for key, prefix in prefixes.items()}
    seeds = {key: stable_seed(seed, trace.id, "forced", key) for key in prefixes}
    rollouts = ts.sample(prompts, n, seeds, ts.params(answer_tokens))
    gold, reference = trace.gold_answer, reference_answer(trace)
    return {key: [grade_forced(ts, r.text, gold, reference) for r in rows] for key, rows in rollouts.items()}


def continuations(
    ts: TraceSampler, trace: Trace, prefixes: Mapping[str, str], *, n: int, seed: int,
    continue_tokens: int, answer_tokens: int,
) -> dict[str, list[Continuation]]:
    """`n` on-policy continuations of each thinking prefix, each followed by a forced answer."""
    head, close = header(trace, ts.template), ts.template.think_close
    prompts = {key: head + prefix for key, prefix in prefixes.items()}
    seeds = {key: stable_seed(seed, trace.id, "continue", key) for key in prefixes}
    thoughts = ts.sample(prompts, n, seeds, ts.params(continue_tokens, stop=(close,)))
    texts = {(key, k): _without_close(r.text, close) for key, rows in thoughts.items() for k, r in enumerate(rows)}
    answer_prefixes = {f"{key}#{k}": prefixes[key] + text for (key, k), text in texts.items()}
    answers = forced_answers(ts, trace, answer_prefixes, n=1, seed=seed, answer_tokens=answer_tokens)
    return {key: [Continuation(texts[key, k], answers[f"{key}#{k}"][0]) for k in range(len(rows))]
            for key, rows in thoughts.items()}


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
