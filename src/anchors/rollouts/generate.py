"""On-policy trace generation: a model thinks about a problem, then answers; the result is a `Trace`.

Models that never close their thinking (e.g. the bundled SmolLM2, which is not a reasoning model) get the
closing tag appended by anchors after the token budget or end of text, followed by a forced answer stem
(`ANSWER_STEM`); the trace's metadata records who closed it (`think_closed_by`: "model" or "anchors").
"""

from __future__ import annotations

import hashlib

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchors.errors import AnchorsError, InputError
from anchors.rollouts.base import PrefixRequest, Sampler, SamplingParams
from anchors.traces.jsonl import RecordReader, TraceWriter, read_problems, read_traces
from anchors.traces.records import Problem, SamplingSettings, Trace
from anchors.types import Progress

if TYPE_CHECKING:
    from anchors.models import ModelHandle
    from anchors.models.templates import PromptTemplate



@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 320  # thinking budget
    answer_tokens: int = 48  # budget for the answer after </think>
    temperature: float = 0.6  # the paper's sampling settings (methods.md §1)
    top_p: float = 0.95
    seed: int = 0


def problems_to_run(
    *, problem: str | None, problems_path: Path | None, out: Path, limit: int | None, problem_id: str | None = None,
    gold_answer: str | None = None,
) -> tuple[list[Problem], RecordReader[Problem] | None]:
    """The problems still lacking a trace in `out` (so an interrupted run resumes), and their reader. A single
    `problem` is named `problem_id`, else by a hash of its text (so two problems into one file stay apart)."""
    if (problem is None) == (problems_path is None):
        raise InputError("give exactly one of --problem TEXT or --problems FILE.jsonl")
    if problem_id is not None and problem is None:
        raise InputError("--id names the single --problem; a problems file carries its own ids")
    reader = None
    if problem is not None:
        name = problem_id or "problem-" + hashlib.sha256(problem.encode("utf-8")).hexdigest()[:10]
        try:
            todo = [Problem(id=name, problem=problem, gold_answer=gold_answer)]
        except ValueError:
            raise InputError(f"--id {problem_id!r}: use letters, digits, '.', '_' and '-' (it names a results folder)") from None
    else:
        reader = read_problems(problems_path)  # type: ignore[arg-type]
        todo = list(reader)
    todo = todo[:limit] if limit else todo
    done = {t.id for t in read_traces(out)} if out.is_file() else set()
    return [p for p in todo if p.id not in done], reader


# When anchors has to close the thinking, it also opens the answer, so a model that is not a reasoning
# model (it would otherwise ramble or stop) still gives a gradable final answer.
ANSWER_STEM = "\n\nThe final answer is \\boxed{"


@dataclass(frozen=True)
class SamplerModel:
    """A model reached through a `Sampler` (the local engine, a server, a Ray pool): prompts are rendered as text
    by `template`, and each completion is rollout 0 of a one-rollout request (its seed derived from the request's,
    as for every rollout). `name` is recorded as the trace's model."""

    sampler: Sampler
    template: PromptTemplate
    name: str

    def complete(self, problem: str, thinking_prefix: str, budget: int, config: GenerationConfig, seed: int,
                 stops: tuple[str, ...] = ()) -> tuple[str, str]:
        request = PrefixRequest(key="generate", prompt_text=self.template.render(problem, thinking_prefix), n=1,
                                seed=seed)
        # stop at `stops` only, not after a boxed answer (the thinking has none yet)
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=budget,
                                stop=stops, stop_after_boxed_answer=False)
        (rollout,) = list(self.sampler.sample([request], params))
        if not rollout.ok:
            raise AnchorsError(f"{self.name}: sampling failed ({rollout.error})")
        return rollout.text, rollout.finish_reason


def _answer(model: SamplerModel, problem: str, thinking: str, config: GenerationConfig, free: bool) -> str:
    """The text after `</think>`: the model's own answer when it closed its thinking, else a forced one."""
    close = model.template.think_close
    if free:
        text, _ = model.complete(problem, thinking + close, config.answer_tokens, config, config.seed + 1)
        if text.strip():
            return text
    text, _ = model.complete(problem, thinking + close + ANSWER_STEM, config.answer_tokens, config, config.seed + 1)
    return ANSWER_STEM + text


def local_model(handle: ModelHandle) -> SamplerModel:
    """A loaded model through the local engine, with its own template."""
    from anchors.rollouts.local import LocalEngine

    return SamplerModel(LocalEngine(handle), handle.template, handle.name)


def generate_trace(model: ModelHandle | SamplerModel, problem: Problem, config: GenerationConfig) -> Trace:
    """Sample a thinking text (stopping at the template's closing tag), then the answer after it."""
    completions = model if isinstance(model, SamplerModel) else local_model(model)
    template = completions.template
    close = template.think_close
    text, finish_reason = completions.complete(problem.problem, "", config.max_new_tokens, config, config.seed, (close,))
    closed_by_model = finish_reason == "stop"
    # the closing tag goes on its own line, as reasoning models write it
    thinking = text.removesuffix(close) if closed_by_model else text + "\n"
    if not thinking.strip():
        raise AnchorsError(f"problem {problem.id!r}: the model closed its thinking at once (no reasoning to analyse); try another --seed")
    answer_text = _answer(completions, problem.problem, thinking, config, free=closed_by_model)
    return Trace(
        id=problem.id, problem=problem.problem, prompt=template.render(problem.problem), thinking=thinking,
        answer_text=answer_text, gold_answer=problem.gold_answer, model=completions.name, template=template.name,
        sampling=SamplingSettings(temperature=config.temperature, top_p=config.top_p,
                                  max_new_tokens=config.max_new_tokens, seed=config.seed),
        metadata={**problem.metadata, "think_closed_by": "model" if closed_by_model else "anchors",
                  "thinking_finish_reason": finish_reason},
    )


def generate_traces(
    model: str | ModelHandle | SamplerModel, problems: Sequence[Problem], *, out: Path | None = None,
    config: GenerationConfig = GenerationConfig(), progress: Progress | None = None, **load_options: Any,
) -> Iterator[Trace]:
    """Generate one trace per problem, appending each to `out` (if given) as soon as it exists. `model` is a
    local model (a name to load with `load_options`, or a loaded handle) or a `SamplerModel` (a server)."""
    from anchors.models import load_model

    handle = load_model(model, **load_options) if isinstance(model, str) else model
    completions = handle if isinstance(handle, SamplerModel) else local_model(handle)
    items = progress(problems, f"generating with {completions.name}") if progress else iter(problems)
    writer = TraceWriter(out) if out is not None else None
    try:
        for problem in items:
            trace = generate_trace(completions, problem, config)
            if writer:
                writer.write(trace)
            yield trace
    finally:
        if writer:
            writer.close()
