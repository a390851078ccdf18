"""A scripted world with a planted causal structure: the ground truth the black-box metrics are tested against.

`PlantedWorld` describes a toy reasoning process over sentences S_0..S_{n-1}:

* resampling from sentence j regenerates positions j, j+1, …: each position t re-expresses S_t's meaning
  (the original text or a paraphrase) with probability `p_regenerate`, else writes an unrelated sentence;
* the *planted* sentence decides the answer: a rollout whose text (prefix or continuation) holds the planted
  meaning answers correctly with probability `p_correct_with`, otherwise with `p_correct_without`;
* the *decoy* is regenerated word for word with probability `p_regenerate_decoy` (overdetermined) and has
  no effect on the answer; nothing else does either.

`ScriptedSampler` implements the rollouts `Sampler` protocol for it (deterministic: rollout k of a request is
drawn from `rollout_seed(request.seed, k)`), and `ScriptedEmbedder` the `Embedder` protocol (paraphrases of one
meaning share a direction; unrelated sentences get their own), so tests need neither a model nor MiniLM.
The true effects are known in closed form (`true_effects`).

`answer_format` writes the answers for an outcome kind (anchors.outcomes): "math" (`\\boxed{42}`), "choice"
(`the answer is (C)`, letters for the numbers) or "words" (a behaviour class in a sentence, `My decision: leverage.`,
for the regex, python and judge outcomes; `WORD_CLASSES`, `word_regex_classes`, `word_judge`, `word_grader`). The
causal structure is the same in every format: only how the answer is written changes.
`CueWorld` and `InsertionWorld` plant the structures of the hint and insertions studies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed
from anchors.traces.records import Trace

_TOPICS = ("apples", "boxes", "pages", "coins", "trains", "books", "pencils", "marbles", "chairs", "cookies",
           "stamps", "shells")
CORRECT, WRONG = "42", ("41", "24", "40")
THINK_CLOSE = "</think>"
FORMATS = ("math", "choice", "words")
# How each answer is written per format: the correct one is the gold (target) answer of the world's trace.
LETTERS = {CORRECT: "C", "41": "A", "24": "B", "40": "D"}
WORD_CLASSES = {CORRECT: "leverage", "41": "comply", "24": "refuse", "40": "report"}
# What forced answers end their prompt with, per format (the outcomes' leads, anchors.outcomes)
_LEADS = {"math": "\\boxed{", "choice": "Therefore, the answer is (", "words": "my final answer is:"}


def _sentence(t: int, variant: int) -> str:
    topic = _TOPICS[t % len(_TOPICS)]
    forms = (f"First I count the {topic} in group number {t} carefully.",
             f"Next, the {topic} of group number {t} get counted with care.",
             f"Carefully, I go through group number {t} and count its {topic}.")
    return forms[variant % len(forms)]


@dataclass(frozen=True)
class PlantedWorld:
    n_sentences: int = 8
    planted: int = 4
    decoy: int = 2
    p_regenerate: float = 0.5
    p_regenerate_planted: float = 0.4
    p_regenerate_decoy: float = 0.95
    p_correct_with: float = 0.9
    p_correct_without: float = 0.1
    p_unfinished: float = 0.0  # a rollout stops before answering (exercises closing of unfinished rollouts)
    # more decisive sentences (t, q): a rollout otherwise headed for the correct answer but lacking S_t's meaning
    # gives its own wrong answer (100 + t) with probability q — graded effects, e.g. for a top-3 benchmark.
    # `true_effects` describes a world without them.
    extra_planted: tuple[tuple[int, float], ...] = ()
    problem: str = "How many items are there in total once every group is counted?"
    answer_format: str = "math"  # math, choice or words (see the module docstring)

    def __post_init__(self) -> None:
        if self.answer_format not in FORMATS:
            raise ValueError(f"answer_format must be one of {FORMATS}")
        if not (0 <= self.planted < self.n_sentences and 0 <= self.decoy < self.n_sentences and self.planted != self.decoy):
            raise ValueError("planted and decoy must be two different sentence indices")
        if any(t in (self.planted, self.decoy) or not 0 <= t < self.n_sentences for t, _ in self.extra_planted):
            raise ValueError("extra planted sentences must be other valid sentence indices")

    @property
    def sentences(self) -> tuple[str, ...]:
        return tuple(_sentence(t, 0) for t in range(self.n_sentences))

    def variants(self, t: int) -> tuple[str, ...]:
        """Texts that carry the meaning of S_t (the decoy has only its original wording)."""
        return (_sentence(t, 0),) if t == self.decoy else tuple(_sentence(t, v) for v in range(3))

    def trace(self, trace_id: str = "planted") -> Trace:
        return Trace(id=trace_id, problem=self.problem, thinking=" ".join(self.sentences) + "\n",
                     answer_text=self.written(CORRECT, final=True), gold_answer=self.gold, template="scripted")

    @property
    def gold(self) -> str:
        """The correct answer as the world's outcome keys it."""
        return self.key(CORRECT)

    def key(self, answer: str) -> str:
        """An answer (a number of the world) as this format's outcome key."""
        if self.answer_format == "choice":
            return LETTERS.get(answer, "E")
        if self.answer_format == "words":
            return WORD_CLASSES.get(answer, "other")
        return answer

    def written(self, answer: str, *, final: bool = False, forced: bool = False) -> str:
        """The answer as the format writes it: a whole final answer, or the completion of a forced one."""
        key = self.key(answer)
        if self.answer_format == "math":
            return f"{key}}}" if forced else f"\\boxed{{{key}}}"
        if self.answer_format == "choice":
            return f"{key})." if forced else f"So the answer is ({key})."
        return f" {key}." if forced else f"My decision: {key}."

    def true_effects(self) -> dict[str, float]:
        """Population values at the planted sentence (default-mode signs)."""
        gap = self.p_correct_with - self.p_correct_without
        return {"counterfactual_importance_accuracy": gap, "forced_importance_accuracy": gap,
                "resampling_importance_accuracy": (1.0 - self.p_regenerate_planted) * gap}

    def sampler(self) -> ScriptedSampler:
        return ScriptedSampler(self)

    def embedder(self) -> ScriptedEmbedder:
        return ScriptedEmbedder(self)

    # --- the generative process -------------------------------------------------------------------------
    def continuation(self, start: int, rng: np.random.Generator) -> list[str]:
        """The sentences a rollout resampled from position `start` writes."""
        out = []
        for t in range(start, self.n_sentences):
            keep = {self.planted: self.p_regenerate_planted, self.decoy: self.p_regenerate_decoy}.get(t, self.p_regenerate)
            if rng.random() < keep:
                variants = self.variants(t)
                out.append(variants[int(rng.integers(len(variants)))])
            else:
                out.append(f"Maybe I should try idea {int(rng.integers(10**9))} about step {t} instead.")
        return out

    def holds(self, t: int, text: str) -> bool:
        """Whether `text` carries the meaning of S_t."""
        return any(v in text for v in self.variants(t))

    def holds_planted(self, text: str) -> bool:
        return self.holds(self.planted, text)

    def answer(self, text: str, rng: np.random.Generator) -> str:
        """The answer of a rollout whose prompt + continuation is `text`."""
        p = self.p_correct_with if self.holds_planted(text) else self.p_correct_without
        if rng.random() >= p:
            return WRONG[int(rng.integers(len(WRONG)))]
        for t, q in self.extra_planted:
            if not self.holds(t, text) and rng.random() < q:
                return str(100 + t)
        return CORRECT


class ScriptedSampler:
    """A `Sampler` for a `PlantedWorld`: reads the prefix from the prompt and writes per the world's rules."""

    def __init__(self, world: PlantedWorld) -> None:
        self.world = world
        self.calls = 0  # rollouts produced (tests check that a cached re-run samples none)

    @property
    def identity(self) -> str:
        return f"scripted:{hashlib.sha256(repr(self.world).encode()).hexdigest()[:12]}"

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        for request in requests:
            for k in range(request.n):
                seed = rollout_seed(request.seed, k)
                self.calls += 1
                text = self._write(request.prompt_text, np.random.default_rng(seed))
                yield Rollout(key=request.key, index=k, seed=seed, text=text, finish_reason="eos",
                              completion_tokens=len(text.split()))

    def _write(self, prompt: str, rng: np.random.Generator) -> str:
        world = self.world
        if prompt.endswith(_LEADS[world.answer_format]):  # a forced (or closing) answer: decided by what the prompt holds
            return world.written(world.answer(prompt, rng), forced=True)
        present = [t for t, s in enumerate(world.sentences) if s in prompt]
        start = max(present) + 1 if present else 0
        body = " ".join(world.continuation(start, rng))
        if rng.random() < world.p_unfinished:
            return body
        return f"{body}\n{THINK_CLOSE}\n\n{world.written(world.answer(prompt + body, rng), final=True)}"


class HashEmbedder:
    """An `Embedder` without a model: equal texts get equal unit vectors, different texts near-orthogonal ones
    (random directions in 64 dimensions, seeded by the text)."""

    identity = "hash-embedder"
    dimension = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([_direction(f"text:{t}") for t in texts], dtype=np.float32).reshape(len(texts), self.dimension)


class ScriptedEmbedder(HashEmbedder):
    """An `Embedder` for a `PlantedWorld`: one random direction per meaning (paraphrases nearly share it,
    cosine ≈ 0.95); any other text gets a direction of its own (cosines near 0 in 64 dimensions)."""

    identity = "scripted-embedder"

    def __init__(self, world: PlantedWorld) -> None:
        self.meaning = {v: t for t in range(world.n_sentences) for v in world.variants(t)}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            t = self.meaning.get(text)
            vector = _direction(f"meaning:{t}") if t is not None else _direction(f"text:{text}")
            if t is not None and text != _sentence(t, 0):
                vector = vector + 0.33 * _direction(f"text:{text}")
            rows.append(vector / np.linalg.norm(vector))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dimension)


def _direction(name: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(HashEmbedder.dimension)
    return vector / np.linalg.norm(vector)


# --- outcomes of the "words" format: the regex, judge and python graders of its classes ---------------------


def word_regex_outcome() -> object:
    """A regex outcome over the words format's classes (anchors.outcomes.RegexOutcome)."""
    from anchors.outcomes import RegexConfig, RegexOutcome

    classes = tuple((name, rf"\b{name}\b") for name in WORD_CLASSES.values())
    return RegexOutcome(RegexConfig(classes=classes, none_class="other", source="planted-classes.json"))


def word_judge_outcome() -> object:
    """A judge outcome over the words format's classes with a scripted judge (no endpoint): it answers the class
    the graded response names (anchors.outcomes.keyword_judge), in JSON, as a judge model would."""
    from anchors.outcomes import JudgeConfig, JudgeOutcome, ScriptedChat, keyword_judge

    classes = (*WORD_CLASSES.values(), "other")
    rubric = "# Planted rubric\n\n## Classes\n" + "".join(f"- {c}: the response decides to {c}\n" for c in classes)
    config = JudgeConfig(rubric=rubric, classes=classes, source="planted-rubric.md", use_cache=False)
    return JudgeOutcome(config, client=ScriptedChat(keyword_judge({c: c for c in WORD_CLASSES.values()}, default="other")))


WORD_GRADER = '''"""The planted world's words grader for the python outcome: the class the answer names."""


def grade(answer, context):
    for word in ("leverage", "comply", "refuse", "report"):
        if word in answer:
            return word
    return None
'''
