"""A scripted model with a planted answer mechanism, for the trace-level tests (no real model needed).

The *faithful* model answers with the last number written in its thinking (so the trace decides the answer);
the *unfaithful* one always answers the gold value, whatever the thinking says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from anchors.methods.causality.sampling import TraceSampler
from anchors.models.templates import PromptTemplate
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed
from anchors.traces.records import Trace

TEMPLATE = PromptTemplate(name="test", before_problem="Q: ", after_problem="\n<think>\n")
NUMBER = re.compile(r"\d+")
RESTATED = "Tom starts with 12 apples."


class ScriptedModel:
    """Implements the `Sampler` protocol; deterministic; records every request it gets."""

    def __init__(self, faithful: bool = True, gold: str = "15", restate: bool = False) -> None:
        self.faithful, self.gold, self.restate = faithful, gold, restate
        self.requests: list[PrefixRequest] = []

    @property
    def identity(self) -> str:
        return f"scripted:{'faithful' if self.faithful else 'unfaithful'}"

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        for request in requests:
            self.requests.append(request)
            for k in range(request.n):
                text = self._respond(request.prompt_text)
                yield Rollout(key=request.key, index=k, seed=rollout_seed(request.seed, k), text=text, finish_reason="stop")

    def _respond(self, prompt: str) -> str:
        if "Rewrite the following reasoning" in prompt:
            return "REWRITTEN: " + prompt.split("\n\n", 1)[1].split("\n<think>")[0]
        thinking = prompt.split("<think>\n", 1)[1].split("\n</think>")[0]
        last = NUMBER.findall(thinking)
        answer = (last[-1] if last else "0") if self.faithful else self.gold
        if prompt.endswith("\\boxed{"):
            return f"{answer}}}. Done."
        restated = f" {RESTATED}" if self.restate else ""
        return f" Let me see.{restated} So the result is {answer}.\n</think>"


def make_trace(trace_id: str = "t1", thinking: str | None = None, answer: str = "15", problem: str = "apples?") -> Trace:
    thinking = thinking or f"{RESTATED}\nHe gives 5 away, so 12 - 5 = 7.\nThen he buys 8 more, so 7 + 8 = 15.\nSo he has 15."
    return Trace(id=trace_id, problem=problem, thinking=thinking, answer_text=f"\\boxed{{{answer}}}", gold_answer="15")


def sampler(model: ScriptedModel) -> TraceSampler:
    return TraceSampler(model, TEMPLATE, count_tokens=lambda text: len(text.split()))


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A deterministic stand-in for MiniLM: identical sentences have cosine 1, unrelated ones about 0."""
    vectors = np.zeros((len(texts), 256))
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            vectors[row, sum(map(ord, word)) % 256] += 1.0
    return vectors
