"""The rollouts of one trace, graded, as the black-box methods read them (methods.md §4 notation).

`TraceRollouts.prefixes[i]` holds R_i (continuations of the prefix S_1..S_{i-1}, i.e. resampled from sentence i
on) and F_i (forced answers after that prefix). In default mode there is one more entry, i = n, continuing after
the whole thinking, so the last sentence gets real scores; paper mode has n entries and gives the last sentence 0.

Every method turns a rollout set into integer arrays once (`RolloutArrays`) and then counts over index draws
(`tally`): the identity draw gives the point estimate, bootstrap draws give the intervals, with one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Bool, Float, Int

from anchors.traces.segment import Sentence


@dataclass(frozen=True)
class GradedRollout:
    """One continuation, reduced to what the metrics need.

    first_sentence: T, the first sentence the continuation wrote ('' if it wrote none before closing its thinking).
    answer: the normalised answer key (the category for answer distributions); None when none was extracted.
    correct: the verdict against the gold answer; None when ungraded (no gold answer, no answer, timeout).
    sentences: the continuation's thinking sentences (for the sentence→sentence matrix; may be left empty).
    closed: the continuation ended without an answer and anchors closed it to sample one (default mode).
    status: how reading it went (anchors.outcomes.OutcomeStatus): ok, no_answer, timeout or error; a timeout or
    error leaves the rollout ungraded (and, unless the outcome kept a key, out of the answer distributions).
    """

    first_sentence: str
    answer: str | None
    correct: bool | None
    sentences: tuple[str, ...] = ()
    closed: bool = False
    status: str = "ok"


@dataclass(frozen=True)
class PrefixRollouts:
    """R_i and F_i. `forced` is None when forced answers were not sampled; `failed` counts rollouts whose
    sampling failed (they are left out of everything)."""

    resampled: tuple[GradedRollout, ...]
    forced: tuple[GradedRollout, ...] | None = None
    failed: int = 0


@dataclass(frozen=True)
class TraceRollouts:
    """All rollouts of one trace. `answers_known` is False when only first sentences are on disk (the
    authors' viewer layout): every answer-based metric is then 'not computed' rather than NaN."""

    trace_id: str
    sentences: tuple[Sentence, ...]
    prefixes: tuple[PrefixRollouts, ...]
    answers_known: bool = True
    has_gold: bool = True
    metadata: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.prefixes) not in (len(self.sentences), len(self.sentences) + 1):
            raise ValueError(f"{self.trace_id}: {len(self.prefixes)} rollout sets for {len(self.sentences)} sentences "
                             "(need one per sentence, plus optionally one after the last)")

    @property
    def n(self) -> int:
        return len(self.sentences)

    @property
    def has_forced(self) -> bool:
        return any(p.forced is not None for p in self.prefixes)

    def answer_vocabulary(self) -> dict[str, int]:
        """Every answer key seen in any rollout of the trace -> a category code (sorted: stable across runs)."""
        keys = {r.answer for p in self.prefixes for group in (p.resampled, p.forced or ()) for r in group}
        return {key: code for code, key in enumerate(sorted(k for k in keys if k is not None))}


@dataclass(frozen=True)
class RolloutArrays:
    """One rollout set as arrays: answer code (-1: none), correct (1/0, NaN: ungraded), first-sentence code."""

    answer: Int[np.ndarray, " rollout"]
    correct: Float[np.ndarray, " rollout"]
    first: Int[np.ndarray, " rollout"]
    categories: int

    @property
    def size(self) -> int:
        return len(self.answer)

    @classmethod
    def build(cls, rollouts: Sequence[GradedRollout], vocabulary: dict[str, int]) -> RolloutArrays:
        firsts: dict[str, int] = {}
        return cls(
            answer=np.array([vocabulary[r.answer] if r.answer is not None else -1 for r in rollouts], dtype=np.int64),
            correct=np.array([np.nan if r.correct is None else float(r.correct) for r in rollouts], dtype=float),
            first=np.array([firsts.setdefault(r.first_sentence, len(firsts)) for r in rollouts], dtype=np.int64),
            categories=len(vocabulary),
        )

    def subset(self, keep: Bool[np.ndarray, " rollout"]) -> RolloutArrays:
        return RolloutArrays(self.answer[keep], self.correct[keep], self.first[keep], self.categories)

    @property
    def answered(self) -> Bool[np.ndarray, " rollout"]:
        return self.answer >= 0


@dataclass(frozen=True)
class Tally:
    """Counts over a batch of draws from one rollout set (leading axis: draw; row 0 alone for the point estimate).

    answers: answer-category counts of the drawn rollouts that have an answer; correct / graded: verdict counts;
    size: rollouts drawn. Tallies add (the union of two sets)."""

    answers: Int[np.ndarray, "rep cat"]
    correct: Float[np.ndarray, " rep"]
    graded: Float[np.ndarray, " rep"]
    size: Float[np.ndarray, " rep"]

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.answers + other.answers, self.correct + other.correct, self.graded + other.graded,
                     self.size + other.size)


def tally(arrays: RolloutArrays, draws: Int[np.ndarray, "rep k"], mask: Bool[np.ndarray, " rollout"] | None = None) -> Tally:
    """Count the rollouts `arrays[draws]` (only those where `mask` is true, if given)."""
    reps = draws.shape[0]
    chosen = np.ones(draws.shape, dtype=bool) if mask is None else mask[draws]
    codes = arrays.answer[draws]
    valid = chosen & (codes >= 0)
    flat = (codes + arrays.categories * np.arange(reps)[:, None])[valid]
    answers = np.bincount(flat, minlength=reps * arrays.categories).reshape(reps, arrays.categories)
    correct = arrays.correct[draws]
    graded = chosen & np.isfinite(correct)
    return Tally(answers, np.where(graded, correct, 0.0).sum(1), graded.sum(1).astype(float),
                 chosen.sum(1).astype(float))


def unique_counts(codes: Int[np.ndarray, " rollout"], draws: Int[np.ndarray, "rep k"]) -> Float[np.ndarray, " rep"]:
    """Number of distinct codes in each row of `codes[draws]` (0 for an empty row)."""
    if draws.shape[1] == 0:
        return np.zeros(draws.shape[0])
    ordered = np.sort(codes[draws], axis=1)
    return (np.diff(ordered, axis=1) != 0).sum(1) + 1.0


def population(prefix: PrefixRollouts, answered_only: bool) -> tuple[GradedRollout, ...]:
    """The rollouts of R_i a method counts: all successful ones, or (the paper's filter) those with an answer."""
    return tuple(r for r in prefix.resampled if r.answer is not None) if answered_only else prefix.resampled


def resampled_arrays(rollouts: TraceRollouts, answered_only: bool) -> list[RolloutArrays]:
    """R_i as arrays for every prefix, restricted to `population`."""
    vocabulary = rollouts.answer_vocabulary()
    return [RolloutArrays.build(population(p, answered_only), vocabulary) for p in rollouts.prefixes]


def forced_arrays(rollouts: TraceRollouts) -> list[RolloutArrays]:
    """F_i as arrays for every prefix (empty where forced answers were not sampled)."""
    vocabulary = rollouts.answer_vocabulary()
    return [RolloutArrays.build(p.forced or (), vocabulary) for p in rollouts.prefixes]
