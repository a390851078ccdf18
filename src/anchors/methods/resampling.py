"""Resampling importance (methods.md §4): how much keeping sentence i, rather than resampling it and
everything after, changes the answer.

accuracy_i = acc(R_i); importance (acc) = acc(R_{i+1}) − acc(R_i); importance (KL) = KL(ans(R_i) ‖ ans(R_{i+1})).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from anchors.methods.blackbox import (
    KL_BOUNDS, BlackBoxConfig, Draws, Estimate, estimate_all, estimates_frame, set_problem,
)
from anchors.methods.rollout_sets import RolloutArrays, TraceRollouts, resampled_arrays, tally
from anchors.metrics.distributions import kl_from_counts, share

LAST_SENTENCE = "last sentence: no rollouts after it (paper convention: 0)"


@dataclass(frozen=True)
class ResamplingImportance:
    accuracy: Estimate
    importance_accuracy: Estimate
    importance_kl: Estimate

    def to_pandas(self) -> pd.DataFrame:
        return estimates_frame({"accuracy": self.accuracy, "resampling_importance_accuracy": self.importance_accuracy,
                       "resampling_importance_kl": self.importance_kl})


def resampling_importance(rollouts: TraceRollouts, config: BlackBoxConfig = BlackBoxConfig()) -> ResamplingImportance:
    """Accuracy and resampling importance of every sentence of one trace."""
    if not rollouts.answers_known:
        raise ValueError(f"{rollouts.trace_id}: resampling importance needs the rollouts' answers")
    sets = resampled_arrays(rollouts, answered_only=config.paper)
    draws = Draws([s.size for s in sets], config.replicates, (config.seed, 1))
    statistic = _statistic(sets, config)
    estimates = estimate_all(rollouts.n, statistic, draws, config.level, _reasons(sets, rollouts, config),
                             shifted={"importance_kl": KL_BOUNDS})
    return ResamplingImportance(estimates["accuracy"], estimates["importance_accuracy"], estimates["importance_kl"])


def _statistic(sets: list[RolloutArrays], config: BlackBoxConfig):
    def statistic(i: int, draws: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        current = tally(sets[i], draws[i])
        accuracy = share(current.correct, current.graded, config.empty)
        if i + 1 >= len(sets):  # paper mode's last sentence (default mode has a set after it)
            zeros = np.zeros_like(accuracy)
            return {"accuracy": accuracy, "importance_accuracy": zeros, "importance_kl": zeros}
        after = tally(sets[i + 1], draws[i + 1])
        return {
            "accuracy": accuracy,
            "importance_accuracy": share(after.correct, after.graded, config.empty) - accuracy,
            "importance_kl": kl_from_counts(current.answers, after.answers, config.smoothing, config.empty),
        }

    return statistic


def _reasons(sets: list[RolloutArrays], rollouts: TraceRollouts, config: BlackBoxConfig) -> dict[str, list[str | None]]:
    """Why each NaN is NaN (default mode; the paper reports 0 instead and needs no reason)."""
    names = ("accuracy", "importance_accuracy", "importance_kl")
    out: dict[str, list[str | None]] = {name: [] for name in names}
    for i in range(rollouts.n):
        graded = _graded_problem(sets[i], rollouts, f"R_{i}")
        after = _graded_problem(sets[i + 1], rollouts, f"R_{i + 1}") if i + 1 < len(sets) else LAST_SENTENCE
        answers = _answer_problem(sets[i], f"R_{i}") or (
            _answer_problem(sets[i + 1], f"R_{i + 1}") if i + 1 < len(sets) else LAST_SENTENCE)
        out["accuracy"].append(graded)
        out["importance_accuracy"].append(graded or after)
        out["importance_kl"].append(answers)
    if config.paper:
        return {name: [None] * rollouts.n for name in names}
    return out


def _answer_problem(arrays: RolloutArrays, label: str) -> str | None:
    problem = set_problem(arrays.size, int(arrays.answered.sum()))
    return f"{label}: {problem}" if problem else None


def _graded_problem(arrays: RolloutArrays, rollouts: TraceRollouts, label: str) -> str | None:
    if not rollouts.has_gold:
        return "no gold answer to grade against"
    problem = set_problem(arrays.size, int(arrays.answered.sum()), int(np.isfinite(arrays.correct).sum()))
    return f"{label}: {problem}" if problem else None
