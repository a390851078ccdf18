"""What the black-box methods share: their configuration, the `Estimate` they return, and the index draws
(point estimate + bootstrap replicates) they count over.

Paper mode reproduces the published computation (methods.md §4): α = 1e-9, rollouts without an answer left
out of every numerator and denominator, 0 where a quantity is undefined, the published signs, no intervals.
Default mode: Jeffreys smoothing (α = 0.5), NaN with a reason where a quantity is undefined, one sign
convention (positive = keeping sentence i moves the answer towards the kept trace's), bootstrap intervals over
rollouts and a permutation test feeding a Benjamini–Hochberg anchor flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from anchors.errors import InputError
from anchors.metrics.bootstrap import bias_corrected_interval, percentile_interval, resample_indices
from anchors.metrics.distributions import JEFFREYS_ALPHA, PAPER_ALPHA
from anchors.types import Mode
from anchors.outcomes.spec import forced_tokens as forced_tokens_of



@dataclass(frozen=True)
class BlackBoxConfig:
    """Settings of resampling, counterfactual and forced-answer importance and the sentence→sentence matrix.

    Fields left None take the mode's value (see `resolved`)."""

    mode: Mode = "default"
    rollouts: int = 8  # per prefix (resampled), and as many forced answers (the CLI's default too)
    similarity_threshold: float = 0.8  # T_i is dissimilar to S_i iff cosine < this
    alpha: float | None = None  # KL smoothing: 1e-9 (paper), 0.5 Jeffreys (default)
    bootstrap: int | None = None  # resamples for the intervals: 0 (paper), 1000 (default)
    level: float = 0.95  # interval coverage
    permutations: int | None = None  # permutation test of counterfactual KL: 0 (paper), 1000 (default)
    fdr: float = 0.05  # Benjamini–Hochberg level of the anchor flag
    forced: bool = True  # also sample forced answers (forced-answer importance)
    matrix: bool = True  # sentence→sentence matrix (embeds every sentence of every rollout)
    seed: int = 0
    # sampling (methods.md §1: T = 0.6, top-p 0.95; token budgets are ours: the paper allows 16,384)
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 96
    forced_max_new_tokens: int | None = None  # None: the outcome's (16 for math and choice, more for words/code)
    answer_method: str | None = None  # the math outcome's extractor of resampled rollouts; None: the mode's
    # what a rollout's answer is (anchors.outcomes spec: math, choice, regex:FILE, python:MOD:FN, judge:RUBRIC.md)
    outcome: str = "math"
    # only these sentences are scored (None: all); the prefixes they need (i and i + 1) are sampled in full
    sentences: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("default", "paper"):
            raise InputError(f"mode must be 'default' or 'paper', not {self.mode!r}")
        if self.rollouts < 1:
            raise InputError(f"rollouts must be at least 1, not {self.rollouts}")
        if not 0.0 < self.level < 1.0 or not 0.0 < self.fdr < 1.0:
            raise InputError("level and fdr must lie strictly between 0 and 1")
        if not -1.0 <= self.similarity_threshold <= 1.0:
            raise InputError(f"similarity_threshold is a cosine in [-1, 1], not {self.similarity_threshold}")
        forced_tokens_of(self.outcome)  # an unknown outcome kind is refused here, not after sampling
        if self.sentences is not None and (not self.sentences or min(self.sentences) < 0):
            raise InputError(f"sentences must be non-negative sentence indices, not {self.sentences}")

    @property
    def paper(self) -> bool:
        return self.mode == "paper"

    @property
    def smoothing(self) -> float:
        return self.alpha if self.alpha is not None else (PAPER_ALPHA if self.paper else JEFFREYS_ALPHA)

    @property
    def replicates(self) -> int:
        return self.bootstrap if self.bootstrap is not None else (0 if self.paper else 1000)

    @property
    def permutation_count(self) -> int:
        return self.permutations if self.permutations is not None else (0 if self.paper else 1000)

    @property
    def forced_budget(self) -> int:
        """Tokens of a forced answer: the given budget, else the outcome's default."""
        return self.forced_max_new_tokens if self.forced_max_new_tokens is not None else forced_tokens_of(self.outcome)

    @property
    def empty(self) -> float:
        """The value of an undefined quantity: the paper's 0, or NaN (with a reason) by default."""
        return 0.0 if self.paper else float("nan")

    def resolved(self) -> dict[str, object]:
        """Every setting with the mode's defaults filled in (what run.json records)."""
        from dataclasses import asdict

        values = asdict(self)
        values.update(alpha=self.smoothing, bootstrap=self.replicates, permutations=self.permutation_count,
                      forced_max_new_tokens=self.forced_budget)
        return values


@dataclass(frozen=True)
class Estimate:
    """One metric for every sentence: value, interval (None when no bootstrap ran) and why a value is NaN."""

    value: Float[np.ndarray, " sent"]
    lo: Float[np.ndarray, " sent"] | None = None
    hi: Float[np.ndarray, " sent"] | None = None
    reason: tuple[str | None, ...] = field(default=())

    def __post_init__(self) -> None:
        # a reason only where the value is NaN, and every NaN has one
        reasons = self.reason or (None,) * len(self.value)
        fixed = tuple(None if np.isfinite(v) else (r or "undefined") for v, r in zip(self.value, reasons))
        object.__setattr__(self, "reason", fixed)


class Draws:
    """Index draws for each rollout set of a trace: the identity (point estimate) and bootstrap replicates."""

    def __init__(self, sizes: Sequence[int], replicates: int, seed: Sequence[int]) -> None:
        rng = np.random.default_rng(list(seed))
        self.point = [np.arange(n)[None, :] for n in sizes]
        self.replicates = [resample_indices(n, replicates, rng) if replicates else None for n in sizes]

    @property
    def bootstrapped(self) -> bool:
        return any(r is not None for r in self.replicates)


# statistic(sentence index, draws of each rollout set) -> {metric: values over draws}
Statistic = Callable[[int, Sequence[Int[np.ndarray, "rep k"]]], dict[str, np.ndarray]]


def estimate_all(
    n: int, statistic: Statistic, draws: Draws, level: float, reasons: dict[str, list[str | None]],
    shifted: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Estimate]:
    """Run `statistic` for every sentence on the point draws and, if any, on the bootstrap draws.

    Percentile intervals, except for the metrics in `shifted` (name -> bounds): statistics that resampling itself
    biases (a KL divergence grows with sampling noise; drawing with replacement duplicates strings) get the
    percentile interval shifted back by the bootstrap bias and clipped to the bounds (`bias_corrected_interval`)."""
    shifted = shifted or {}
    points = [statistic(i, draws.point) for i in range(n)]
    names = list(points[0]) if points else list(reasons)
    values = {name: np.array([float(np.ravel(p[name])[0]) for p in points]) for name in names}
    if not draws.bootstrapped:
        return {name: Estimate(values[name], reason=tuple(reasons[name])) for name in names}
    boot = [statistic(i, draws.replicates) for i in range(n)]  # type: ignore[arg-type]
    reps = max(len(r) for r in draws.replicates if r is not None)
    out = {}
    for name in names:
        columns = [np.broadcast_to(np.asarray(b[name], dtype=float), (reps,)) for b in boot]
        replicates = np.stack(columns, axis=1) if n else np.zeros((reps, 0))
        if name in shifted:
            lo, hi = bias_corrected_interval(values[name], replicates, level, bounds=shifted[name])
        else:
            lo, hi = percentile_interval(replicates, level)
        undefined = ~np.isfinite(values[name])
        out[name] = Estimate(values[name], np.where(undefined, np.nan, lo), np.where(undefined, np.nan, hi),
                             tuple(reasons[name]))
    return out


def estimates_frame(estimates: dict[str, Estimate]) -> pd.DataFrame:
    """One row per sentence: each metric, its interval columns (when computed) and its NaN reason."""
    columns: dict[str, object] = {}
    for name, estimate in estimates.items():
        columns[name] = estimate.value
        if estimate.lo is not None:
            columns[f"{name}_lo"], columns[f"{name}_hi"] = estimate.lo, estimate.hi
        columns[f"{name}_reason"] = list(estimate.reason)
    frame = pd.DataFrame(columns)
    frame.index.name = "index"
    return frame


KL_BOUNDS = (0.0, float("inf"))
SHARE_BOUNDS = (0.0, 1.0)


def set_problem(size: float, answered: float, graded: float | None = None) -> str | None:
    """Why a rollout set yields no accuracy / distribution: no rollouts, no answers, or no verdicts."""
    if size == 0:
        return "no successful rollouts"
    if answered == 0:
        return "no rollout has an extractable answer"
    if graded is not None and graded == 0:
        return "no rollout could be graded"
    return None
