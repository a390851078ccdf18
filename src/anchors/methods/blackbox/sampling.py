"""From a trace to graded rollouts: the planned requests of every prefix (anchors.rollouts.plan), the sampling
jobs, and grading by the run's outcome (anchors.outcomes; `BlackBoxConfig.outcome`, the math answer by default).

Grading: every rollout is read by the outcome (`Outcome.grade`; forced answers by `Outcome.grade_forced`), which
gives its key, its verdict against the gold (target) answer and a status; a grader that times out or fails gives
that rollout status timeout / error and the run goes on. The math outcome is exactly the grading anchors always
did: paper mode takes the first boxed answer (of prompt + completion for forced answers, as published), default
mode the last. A rollout without an answer (its token budget ran out, or a model that never closes its
reasoning stopped) is *closed* (default mode) the way `anchors generate` closes a trace — its text, the closing
tag and the outcome's answer stem ("The final answer is \\boxed{" for math) — and its answer sampled (a short
second request); `GradedRollout.closed` records it. For outcomes that read only the answer part (after the
closing tag), a rollout whose thinking never closed is closed too, whatever its text holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.phases import PhaseTimer, optional_phase
from anchors.methods.blackbox.rollout_sets import GradedRollout, PrefixRollouts, TraceRollouts
from anchors.models.templates import PromptTemplate, paper_template
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams
from anchors.rollouts.generate import ANSWER_STEM
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.plan import PromptPlan, chosen_sentences, needed_prefixes, plan_prompts, stream
from anchors.rollouts.plan import sampling_params as planned_params
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences

if TYPE_CHECKING:
    from anchors.outcomes import Outcome


def run_outcome(config: BlackBoxConfig, template: PromptTemplate) -> Outcome:
    """The outcome `config.outcome` names, set up for the mode, the math extractor and the template's closing tag."""
    from anchors.outcomes import parse_outcome

    close = paper_template().think_close if config.paper else template.think_close
    return parse_outcome(config.outcome, mode=config.mode, answer_method=config.answer_method, think_close=close)


def sampling_params(config: BlackBoxConfig, forced: bool = False, outcome: Outcome | None = None) -> SamplingParams:
    budget = config.forced_budget if forced else config.max_new_tokens
    stop = outcome.stops_after_boxed_answer if outcome is not None else True
    return planned_params(config.temperature, config.top_p, budget, stop_after_boxed_answer=stop)


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
            store: str | Path | None = None, progress: Any = True, phase: str = "sampling") -> dict[str, list[Rollout]]:
    """`collect_rollouts` keeping failed rollouts in their lists (`r.ok` is False): a few failures from a
    server must not cost a long job; the metrics count them and a sentence left with none reports why."""
    return collect_rollouts(sampler, requests, params, store=store, progress=progress, errors="keep", phase=phase)


@dataclass(frozen=True)
class Grader:
    """How rollouts of one trace are graded: by `outcome`, against the trace's gold (target) answer."""

    outcome: Outcome
    trace: Trace
    mode: str
    think_close: str
    keep_sentences: bool = True  # every sentence of the continuation (the matrix needs them), not just the first

    def resampled(self, text: str, prompt: str) -> GradedRollout:
        result = self.outcome.grade(text, self.trace.gold_answer, trace=self.trace)
        sentences = self._sentences(text)
        return GradedRollout(first_sentence=sentences[0] if sentences else "", answer=result.key,
                             correct=result.correct, sentences=sentences if self.keep_sentences else (),
                             status=result.status.value)

    def forced(self, completion: str, prompt: str) -> GradedRollout:
        result = self.outcome.grade_forced(completion, self.trace.gold_answer, prompt=prompt, trace=self.trace)
        return GradedRollout(first_sentence="", answer=result.key, correct=result.correct, status=result.status.value)

    def unfinished(self, text: str, graded: GradedRollout) -> bool:
        """Whether a rollout must be closed to be read: it has no answer, or (for outcomes that read the answer
        part only) its thinking never closed."""
        if graded.status == "no_answer":
            return True
        return self.outcome.reads_answer_part and self.think_close not in text

    def _sentences(self, text: str) -> tuple[str, ...]:
        if self.mode == "paper":  # the authors' chunker keeps the part before the closing tag itself
            return tuple(s.text for s in split_sentences(text, mode="paper"))
        return tuple(s.text for s in split_sentences(text.split(self.think_close)[0], mode="default"))


def sample_trace_rollouts(
    trace: Trace, sampler: Sampler, template: PromptTemplate, config: BlackBoxConfig = BlackBoxConfig(), *,
    store: str | Path | None = None, progress: Any = True, stops: Sequence[int] | None = None,
    starts: Sequence[int] | None = None, outcome: Outcome | None = None, timer: PhaseTimer | None = None,
) -> TraceRollouts:
    """Split the trace, sample R_i (and F_i) for every prefix, close unfinished rollouts (default mode), grade.

    By default the first `config.rollouts` of every prefix's stream (only the prefixes `config.sentences` needs,
    when given); `starts`/`stops` pick other stretches (adaptive rounds). `outcome`: the outcome object to grade
    with (e.g. a judge with a client of its own); by default built from `config.outcome`. `timer`: where the
    seconds of sampling and grading are added up."""
    outcome = outcome if outcome is not None else run_outcome(config, template)
    if outcome.spec != config.outcome:
        raise ValueError(f"the outcome given ({outcome.spec}) is not the config's ({config.outcome}): the results "
                         "would record the wrong one")
    sentences = split_sentences(trace.thinking, mode=config.mode)
    suffix = outcome.forced_suffix(paper_template() if config.paper else template)
    plan = plan_prompts(trace, sentences, template, config.mode, forced_suffix=suffix)
    stops = list(stops) if stops is not None else default_stops(trace, len(sentences), len(plan.prefixes), config)
    starts = list(starts) if starts is not None else [0] * len(plan.prefixes)
    requests = prefix_requests(plan, stops, config, starts)
    resample = [r for (kind, _), rs in requests.items() if kind == "resample" for r in rs]
    forced = [r for (kind, _), rs in requests.items() if kind == "forced" for r in rs]
    with optional_phase(timer, "sampling_resampled"):
        got = collect(sampler, resample, sampling_params(config, outcome=outcome), store=store, progress=progress,
                      phase="resampling")
    if forced:
        with optional_phase(timer, "sampling_forced"):
            got |= collect(sampler, forced, sampling_params(config, True, outcome), store=store, progress=progress,
                           phase="forced answers")
    grader = Grader(outcome, trace, config.mode, plan.think_close, keep_sentences=config.matrix)
    streams = [stream(got, requests["resample", i], starts[i], stops[i]) for i in range(len(stops))]
    prefixes = []
    with optional_phase(timer, "grading"):
        for i, rollouts in enumerate(streams):
            forced_rollouts = stream(got, requests["forced", i], starts[i], stops[i]) if config.forced else None
            prefixes.append(_graded_prefix(plan, i, rollouts, forced_rollouts, grader))
    if config.mode == "default":
        prefixes = close_unfinished(plan, prefixes, streams, sampler, grader, config, store=store, progress=progress,
                                    timer=timer)
    return TraceRollouts(trace.id, tuple(sentences), tuple(prefixes), has_gold=trace.gold_answer is not None)


def default_stops(trace: Trace, n_sentences: int, n_prefixes: int, config: BlackBoxConfig) -> list[int]:
    """`config.rollouts` from every prefix, or (with `config.sentences`) from those the chosen sentences need."""
    if config.sentences is None:
        return [config.rollouts] * n_prefixes
    needed = set(needed_prefixes(n_prefixes, chosen_sentences(trace.id, n_sentences, config.sentences)))
    return [config.rollouts if i in needed else 0 for i in range(n_prefixes)]


def _graded_prefix(plan: PromptPlan, i: int, resampled: list[tuple[int, Rollout]],
                   forced: list[tuple[int, Rollout]] | None, grader: Grader) -> PrefixRollouts:
    ok = [r for _, r in resampled if r.ok]
    graded_forced = None if forced is None else tuple(grader.forced(r.text, plan.forced_prompt(i)) for _, r in forced if r.ok)
    return PrefixRollouts(tuple(grader.resampled(r.text, plan.resample_prompt(i)) for r in ok), graded_forced,
                          failed=len(resampled) - len(ok))


def close_unfinished(
    plan: PromptPlan, prefixes: list[PrefixRollouts], streams: list[list[tuple[int, Rollout]]],
    sampler: Sampler, grader: Grader, config: BlackBoxConfig, *, store: str | Path | None, progress: Any,
    timer: PhaseTimer | None = None,
) -> list[PrefixRollouts]:
    """Give every unfinished rollout an answer: its text + closing tag + answer stem, then a short sample."""
    requests, where = [], {}
    stem = grader.outcome.closing_stem()
    for i, prefix in enumerate(prefixes):
        ok = [(position, r) for position, r in streams[i] if r.ok]
        for k, ((position, rollout), graded) in enumerate(zip(ok, prefix.resampled)):
            if grader.unfinished(rollout.text, graded):
                prompt = plan.resample_prompt(i) + closing_text(rollout.text, plan.think_close, stem)
                (request,) = plan.requests("close", f"{i}.{position}", prompt, 0, 1, config.seed, prefix=i)
                requests.append(request)
                where[request.key] = (i, k)
    if not requests:
        return prefixes
    with optional_phase(timer, "sampling_closing"):
        answers = collect(sampler, requests, sampling_params(config, True, grader.outcome), store=store,
                          progress=progress, phase="closing")
    updated = [list(p.resampled) for p in prefixes]
    with optional_phase(timer, "grading"):
        for key, (i, k) in where.items():
            done = [r for r in answers.get(key, []) if r.ok]
            if done:
                answer = grader.forced(done[0].text, "")
                updated[i][k] = replace(updated[i][k], answer=answer.answer, correct=answer.correct,
                                        status=answer.status, closed=True)
    return [replace(p, resampled=tuple(u)) for p, u in zip(prefixes, updated)]


def closing_text(rollout_text: str, think_close: str, stem: str = ANSWER_STEM) -> str:
    """What anchors appends to an unfinished rollout to make it answer (as `anchors generate` does for traces):
    the closing tag unless it is there, then the outcome's answer stem."""
    if think_close in rollout_text:
        return stem
    return ("" if rollout_text.endswith("\n") else "\n") + think_close + stem
