"""From a trace to graded rollouts: the planned requests of every prefix (anchors.rollouts.plan), the sampling
jobs, and grading.

Grading: paper mode takes the first boxed answer of the rollout (of prompt + completion for forced answers, as
published). Default mode takes the last boxed answer; a rollout that ends without one (its token budget ran out,
or a model that never closes its reasoning stopped) is *closed* the way `anchors generate` closes a trace —
its text, the closing tag and "The final answer is \\boxed{" — and its answer is sampled (a short second
request); `GradedRollout.closed` records it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.rollout_sets import GradedRollout, PrefixRollouts, TraceRollouts
from anchors.models.templates import PromptTemplate
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams
from anchors.rollouts.generate import ANSWER_STEM
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.plan import PromptPlan, plan_prompts, stream
from anchors.rollouts.plan import sampling_params as planned_params
from anchors.traces.answers import grade
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences

BOX_OPEN = "\\boxed{"


def sampling_params(config: BlackBoxConfig, forced: bool = False) -> SamplingParams:
    budget = config.forced_max_new_tokens if forced else config.max_new_tokens
    return planned_params(config.temperature, config.top_p, budget)


def prefix_requests(plan: PromptPlan, stops: Sequence[int], config: BlackBoxConfig,
                    starts: Sequence[int] | None = None) -> dict[tuple[str, int], list[PrefixRequest]]:
    """(kind, prefix) -> the requests for rollouts starts[i] .. stops[i]-1 of prefix i's resampling (and
    forced-answer) stream."""
    out = {}
    for i, stop in enumerate(stops):
        start = starts[i] if starts is not None else 0
        out["resample", i] = plan.resample(i, start, stop, config.seed)
        if config.forced:
            out["forced", i] = plan.forced(i, start, stop, config.seed)
    return out


def planned_requests(trace: Trace, template: PromptTemplate, config: BlackBoxConfig) -> dict[str, list[PrefixRequest]]:
    """The requests `sample_trace_rollouts` makes first ('resample', and 'forced' when configured), with
    `config.rollouts` each; answers sampled later for rollouts that end without one are not in it."""
    plan = plan_prompts(trace, split_sentences(trace.thinking, mode=config.mode), template, config.mode)
    requests = prefix_requests(plan, [config.rollouts] * len(plan.prefixes), config)
    return {kind: [r for (k, _), rs in requests.items() if k == kind for r in rs]
            for kind in ("resample", "forced") if kind == "resample" or config.forced}


def collect(sampler: Sampler, requests: Sequence[PrefixRequest], params: SamplingParams, *,
            store: str | Path | None = None, progress: bool = True) -> dict[str, list[Rollout]]:
    """`collect_rollouts` keeping failed rollouts in their lists (`r.ok` is False): a few failures from a
    server must not cost a long job; the metrics count them and a sentence left with none reports why."""
    return collect_rollouts(sampler, requests, params, store=store, progress=progress, errors="keep")


@dataclass(frozen=True)
class Grader:
    """How rollouts of one trace are graded (see the module docstring)."""

    gold: str | None
    mode: str
    method: str | None
    think_close: str
    keep_sentences: bool = True  # every sentence of the continuation (the matrix needs them), not just the first

    def resampled(self, text: str, prompt: str) -> GradedRollout:
        result = grade(text, self.gold, mode=self.mode, method=self.method)  # type: ignore[arg-type]
        sentences = self._sentences(text)
        return GradedRollout(first_sentence=sentences[0] if sentences else "", answer=result.key,
                             correct=result.correct, sentences=sentences if self.keep_sentences else ())

    def forced(self, completion: str, prompt: str) -> GradedRollout:
        if self.mode == "paper":  # the first boxed answer of prompt + completion, as published
            result = grade(prompt + completion, self.gold, mode="paper")
        else:
            result = grade(BOX_OPEN + completion, self.gold, mode="default", method="boxed_first")
        return GradedRollout(first_sentence="", answer=result.key, correct=result.correct)

    def _sentences(self, text: str) -> tuple[str, ...]:
        if self.mode == "paper":  # the authors' chunker keeps the part before the closing tag itself
            return tuple(s.text for s in split_sentences(text, mode="paper"))
        return tuple(s.text for s in split_sentences(text.split(self.think_close)[0], mode="default"))


def sample_trace_rollouts(
    trace: Trace, sampler: Sampler, template: PromptTemplate, config: BlackBoxConfig = BlackBoxConfig(), *,
    store: str | Path | None = None, progress: bool = True, stops: Sequence[int] | None = None,
    starts: Sequence[int] | None = None,
) -> TraceRollouts:
    """Split the trace, sample R_i (and F_i) for every prefix, close unfinished rollouts (default mode), grade.

    By default the first `config.rollouts` of every prefix's stream; `starts`/`stops` pick other stretches
    (adaptive rounds)."""
    sentences = split_sentences(trace.thinking, mode=config.mode)
    plan = plan_prompts(trace, sentences, template, config.mode)
    stops = list(stops) if stops is not None else [config.rollouts] * len(plan.prefixes)
    starts = list(starts) if starts is not None else [0] * len(plan.prefixes)
    requests = prefix_requests(plan, stops, config, starts)
    resample = [r for (kind, _), rs in requests.items() if kind == "resample" for r in rs]
    forced = [r for (kind, _), rs in requests.items() if kind == "forced" for r in rs]
    got = collect(sampler, resample, sampling_params(config), store=store, progress=progress)
    if forced:
        got |= collect(sampler, forced, sampling_params(config, forced=True), store=store, progress=progress)
    grader = Grader(trace.gold_answer, config.mode, config.answer_method, plan.think_close, keep_sentences=config.matrix)
    streams = [stream(got, requests["resample", i], starts[i], stops[i]) for i in range(len(stops))]
    prefixes = []
    for i, rollouts in enumerate(streams):
        forced_rollouts = stream(got, requests["forced", i], starts[i], stops[i]) if config.forced else None
        prefixes.append(_graded_prefix(plan, i, rollouts, forced_rollouts, grader))
    if config.mode == "default":
        prefixes = close_unfinished(plan, prefixes, streams, sampler, grader, config, store=store, progress=progress)
    return TraceRollouts(trace.id, tuple(sentences), tuple(prefixes), has_gold=trace.gold_answer is not None)


def _graded_prefix(plan: PromptPlan, i: int, resampled: list[tuple[int, Rollout]],
                   forced: list[tuple[int, Rollout]] | None, grader: Grader) -> PrefixRollouts:
    ok = [r for _, r in resampled if r.ok]
    graded_forced = None if forced is None else tuple(grader.forced(r.text, plan.forced_prompt(i)) for _, r in forced if r.ok)
    return PrefixRollouts(tuple(grader.resampled(r.text, plan.resample_prompt(i)) for r in ok), graded_forced,
                          failed=len(resampled) - len(ok))


def close_unfinished(
    plan: PromptPlan, prefixes: list[PrefixRollouts], streams: list[list[tuple[int, Rollout]]],
    sampler: Sampler, grader: Grader, config: BlackBoxConfig, *, store: str | Path | None, progress: bool,
) -> list[PrefixRollouts]:
    """Give every answerless rollout an answer: its text + closing tag + answer stem, then a short sample."""
    requests, where = [], {}
    for i, prefix in enumerate(prefixes):
        ok = [(position, r) for position, r in streams[i] if r.ok]
        for k, ((position, rollout), graded) in enumerate(zip(ok, prefix.resampled)):
            if graded.answer is None:
                prompt = plan.resample_prompt(i) + closing_text(rollout.text, plan.think_close)
                (request,) = plan.requests("close", f"{i}.{position}", prompt, 0, 1, config.seed, prefix=i)
                requests.append(request)
                where[request.key] = (i, k)
    if not requests:
        return prefixes
    answers = collect(sampler, requests, sampling_params(config, forced=True), store=store, progress=progress)
    updated = [list(p.resampled) for p in prefixes]
    for key, (i, k) in where.items():
        done = [r for r in answers.get(key, []) if r.ok]
        if done:
            answer = grader.forced(done[0].text, "")
            updated[i][k] = replace(updated[i][k], answer=answer.answer, correct=answer.correct, closed=True)
    return [replace(p, resampled=tuple(u)) for p, u in zip(prefixes, updated)]


def closing_text(rollout_text: str, think_close: str) -> str:
    """What anchors appends to an unfinished rollout to make it answer (as `anchors generate` does for traces)."""
    if think_close in rollout_text:
        return ANSWER_STEM
    return ("" if rollout_text.endswith("\n") else "\n") + think_close + ANSWER_STEM
