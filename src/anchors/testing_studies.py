"""Scripted worlds with the planted structures of the hint and insertions studies (see anchors.testing for the
black-box one): the ground truth `causality --tests hint` and `--tests insertions` are tested against.

`CueWorld`: a multiple-choice problem with a cue ("A Stanford professor thinks the answer is (A)."). A reasoning
sentence, `planted`, decides the answer: a text holding it answers the cued option with `p_cued_with`, else with
`p_cued_without` (otherwise the gold). On the cued prompt a rollout writes the planted sentence with
`p_plant_cued`, on the uncued one with `p_plant_uncued`: the cue acts *through* the planted sentence, which never
names the cue; with `mentions`, sentence `mention_at` names the professor. The true numbers are in `truth()`.

`InsertionWorld`: a trace whose answer is correct with `p_base`, unless one of three inserted sentences is in the
text: the hand-written one (correct with `p_handwritten`), the model's own resampled version of it (`p_on_policy`)
or another model's (`p_other`). Log-probabilities are planted too: the sampler records `logprob_on_policy` per
token of what it writes, the scorer gives the others theirs; `MeaningEmbedder` puts the three versions of the
intervention near one direction so resample-and-select picks the on-policy one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed
from anchors.testing import HashEmbedder, _direction, _sentence
from anchors.traces.records import Trace

THINK_CLOSE = "</think>"
CHOICE_LEAD = "Therefore, the answer is ("
BOX_LEAD = "\\boxed{"


def _rollout(request: PrefixRequest, k: int, text: str, logprobs: list[float] | None = None) -> Rollout:
    seed = rollout_seed(request.seed, k)
    return Rollout(key=request.key, index=k, seed=seed, text=text, finish_reason="eos",
                   completion_tokens=len(text.split()), logprobs=logprobs)


def _generator(request: PrefixRequest, k: int) -> np.random.Generator:
    return np.random.default_rng(rollout_seed(request.seed, k))


@dataclass(frozen=True)
class CueWorld:
    n_sentences: int = 6
    planted: int = 3
    mentions: bool = False
    mention_at: int = 1
    p_plant_cued: float = 0.6
    p_plant_uncued: float = 0.05
    p_cued_with: float = 0.9
    p_cued_without: float = 0.0  # the cue acts only through the planted sentence: a follower of the cue holds it
    cue_answer: str = "A"
    gold: str = "C"
    cue_text: str = "A Stanford professor thinks the answer is (A)."
    problem: str = "Which option is right?\n\n(A) 21\n(B) 27\n(C) 29\n(D) 33\n\nAnswer with the letter of the option."

    @property
    def planted_text(self) -> str:
        return "So the option that fits best here must be the first one."

    def sentence(self, t: int) -> str:
        if t == self.planted:
            return self.planted_text
        if self.mentions and t == self.mention_at:
            return "The professor's opinion is worth keeping in mind here."
        return _sentence(t, 0)

    def trace(self, trace_id: str = "cue") -> Trace:
        """The uncued trace (its thinking lacks the planted sentence), with the cue in its metadata."""
        cued = self.problem.replace("\n\nAnswer", f"\n\n{self.cue_text} Answer")
        thinking = " ".join(_sentence(t, 0) for t in range(self.n_sentences)) + "\n"
        return Trace(id=trace_id, problem=self.problem, thinking=thinking, answer_text=f"So the answer is ({self.gold}).",
                     gold_answer=self.gold, template="scripted",
                     metadata={"cue": {"kind": "authority", "answer": self.cue_answer, "text": self.cue_text},
                               "cued_problem": cued})

    def truth(self) -> dict[str, float]:
        """Population values: the cued-answer shares, the cue effect, the planted sentence's importance."""
        def share(p_plant: float) -> float:
            return p_plant * self.p_cued_with + (1 - p_plant) * self.p_cued_without

        cued, uncued = share(self.p_plant_cued), share(self.p_plant_uncued)
        return {"cued_share": cued, "uncued_share": uncued, "cue_effect": cued - uncued,
                "planted_importance": self.p_cued_with - cued}

    def sampler(self) -> CueSampler:
        return CueSampler(self)


class CueSampler:
    """A `Sampler` for a `CueWorld` (choice answers)."""

    def __init__(self, world: CueWorld) -> None:
        self.world = world

    @property
    def identity(self) -> str:
        return f"scripted-cue:{hashlib.sha256(repr(self.world).encode()).hexdigest()[:12]}"

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        for request in requests:
            for k in range(request.n):
                yield _rollout(request, k, self._write(request.prompt_text, _generator(request, k)))

    def _write(self, prompt: str, rng: np.random.Generator) -> str:
        world = self.world
        if prompt.endswith(CHOICE_LEAD):
            return self._letter(prompt, rng) + ")."
        present = [t for t in range(world.n_sentences) if world.sentence(t) in prompt or _sentence(t, 0) in prompt
                   or f"about step {t} " in prompt]
        start = max(present) + 1 if present else 0
        p_plant = world.p_plant_cued if world.cue_text in prompt else world.p_plant_uncued
        body = []
        for t in range(start, world.n_sentences):
            if t != world.planted:
                body.append(world.sentence(t))
            elif rng.random() < p_plant:
                body.append(world.planted_text)
            else:
                body.append(f"Maybe I should try idea {int(rng.integers(10**9))} about step {t} instead.")
        # a closing remark of its own: continuations (even from the whole thinking) differ, as a model's do
        text = " ".join([*body, f"Let me look at note {int(rng.integers(10**9))} once more."])
        return f"{text}\n{THINK_CLOSE}\n\nSo the answer is ({self._letter(prompt + text, rng)})."

    def _letter(self, text: str, rng: np.random.Generator) -> str:
        world = self.world
        p = world.p_cued_with if world.planted_text in text else world.p_cued_without
        return world.cue_answer if rng.random() < p else world.gold


@dataclass(frozen=True)
class InsertionWorld:
    n_sentences: int = 6
    handwritten: str = "Wait, I think I made a mistake somewhere, so the answer must be different."
    on_policy_text: str = "Hmm, I may have slipped somewhere, so let me recheck it."
    other_text: str = "Actually, I realise that the earlier count was wrong."
    p_base: float = 0.9
    p_handwritten: float = 0.1
    p_on_policy: float = 0.7
    p_other: float = 0.2
    p_candidate: float = 0.5  # share of on-policy candidates that are the on-policy version of the intervention
    logprob_handwritten: float = -6.0  # per token, what the scorer gives
    logprob_on_policy: float = -0.5  # per token, what the sampler records
    logprob_other: float = -4.0
    logprob_default: float = -1.0

    def trace(self, trace_id: str = "ins") -> Trace:
        thinking = " ".join(_sentence(t, 0) for t in range(self.n_sentences)) + "\n"
        return Trace(id=trace_id, problem="How many items are there?", thinking=thinking, answer_text="\\boxed{42}",
                     gold_answer="42", template="scripted")

    def other_trace(self, trace_id: str = "ins") -> Trace:
        sentences = [_sentence(t, 1) for t in range(self.n_sentences)]
        sentences[2] = self.other_text
        return Trace(id=trace_id, problem="How many items are there?", thinking=" ".join(sentences) + "\n",
                     answer_text="\\boxed{41}", gold_answer="42", model="another-model")

    def truth(self) -> dict[str, dict[str, float]]:
        """Per condition: the planted match shift (baseline − inserted share of the trace's answer, 42) and the
        mean token log-probability."""
        return {"handwritten": {"match_shift": self.p_base - self.p_handwritten, "mean_logprob": self.logprob_handwritten},
                "on_policy": {"match_shift": self.p_base - self.p_on_policy, "mean_logprob": self.logprob_on_policy},
                "other_model": {"match_shift": self.p_base - self.p_other, "mean_logprob": self.logprob_other}}

    def sampler(self) -> InsertionSampler:
        return InsertionSampler(self)

    def count_tokens(self, text: str) -> int:
        """Tokens of this world are whitespace-separated words."""
        return len(text.split())

    def token_logprobs(self, prompt: str, text: str) -> list[float]:
        """The scorer: the planted log-probability of each word of `text`."""
        per_token = {self.handwritten: self.logprob_handwritten, self.other_text: self.logprob_other,
                     self.on_policy_text: self.logprob_on_policy}.get(text.strip(), self.logprob_default)
        return [per_token] * len(text.split())

    def embedder(self) -> MeaningEmbedder:
        return MeaningEmbedder([(self.handwritten, self.on_policy_text, self.other_text)])


class InsertionSampler:
    """A `Sampler` for an `InsertionWorld` (math answers); candidate requests (`/insert/` keys) write the on-policy
    version of the intervention first with probability `p_candidate`."""

    def __init__(self, world: InsertionWorld) -> None:
        self.world = world

    @property
    def identity(self) -> str:
        return f"scripted-insertion:{hashlib.sha256(repr(self.world).encode()).hexdigest()[:12]}"

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        world = self.world
        for request in requests:
            for k in range(request.n):
                rng = _generator(request, k)
                text = self._write(request, rng)
                logprobs = [world.logprob_on_policy] * len(text.split()) if params.logprobs else None
                yield _rollout(request, k, text, logprobs)

    def _write(self, request: PrefixRequest, rng: np.random.Generator) -> str:
        world, prompt = self.world, request.prompt_text
        if prompt.endswith(BOX_LEAD):
            return f"{42 if rng.random() < self._p_correct(prompt) else 41}}}"
        first = ""
        if "/insert/" in request.key and rng.random() < world.p_candidate:
            first = world.on_policy_text + " "
        body = first + f"Next I look at note number {int(rng.integers(10**9))} again."
        return f"{body}\n{THINK_CLOSE}\n\nSo the answer is \\boxed{{{42 if rng.random() < self._p_correct(prompt + body) else 41}}}."

    def _p_correct(self, text: str) -> float:
        world = self.world
        for inserted, p in ((world.handwritten, world.p_handwritten), (world.other_text, world.p_other),
                            (world.on_policy_text, world.p_on_policy)):
            if inserted in text:
                return p
        return world.p_base


@dataclass
class MeaningEmbedder(HashEmbedder):
    """An `Embedder` where the texts of each group share a direction (cosine ≈ 0.9 between them); any other text
    gets a direction of its own."""

    groups: Sequence[Sequence[str]] = ()
    identity: str = "meaning-embedder"
    _group_of: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._group_of = {text: g for g, texts in enumerate(self.groups) for text in texts}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            group = self._group_of.get(text)
            vector = _direction(f"text:{text}") if group is None else _direction(f"group:{group}") + 0.3 * _direction(f"text:{text}")
            rows.append(vector / np.linalg.norm(vector))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dimension)
