"""Forced-answer importance (methods.md §4): the answer the model gives when made to answer at once after
S_1..S_{i-1} (F_i) versus after S_1..S_i (F_{i+1}).

forced accuracy_i = acc(F_i); importance (acc) = acc(F_{i+1}) − acc(F_i); importance (KL) = KL(ans(F_i) ‖ ans(F_{i+1})).
Paper mode: rollouts without an answer left out, 0 where undefined, 0 for the last sentence. Default mode:
Jeffreys smoothing, NaN with a reason where undefined, the last sentence scored against F_{n+1} (the answer
forced after the whole thinking) when it was sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from anchors.methods.blackbox import (
    KL_BOUNDS, BlackBoxConfig, Draws, Estimate, estimate_all, estimates_frame, set_problem,
)
from anchors.methods.rollout_sets import RolloutArrays, TraceRollouts, forced_arrays, tally
from anchors.metrics.distributions import kl_from_counts, share


@dataclass(frozen=True)
class ForcedAnswerImportance:
    forced_accuracy: Estimate
    importance_accuracy: Estimate
    importance_kl: Estimate

    def to_pandas(self) -> pd.DataFrame:
        return estimates_frame({"forced_accuracy": self.forced_accuracy,
                                "forced_importance_accuracy": self.importance_accuracy,
                                "forced_importance_kl": self.importance_kl})


def forced_answer_importance(rollouts: TraceRollouts, config: BlackBoxConfig = BlackBoxConfig()) -> ForcedAnswerImportance:
    """Forced-answer accuracy and importance of every sentence of one trace."""
    if not rollouts.has_forced:
        raise ValueError(f"{rollouts.trace_id}: no forced-answer rollouts were sampled")
    sets = forced_arrays(rollouts)
    if config.paper:
        sets = [s.subset(s.answered) for s in sets]
    draws = Draws([s.size for s in sets], config.replicates, (config.seed, 4))
    estimates = estimate_all(rollouts.n, _statistic(sets, config), draws, config.level, _reasons(sets, rollouts, config),
                             shifted={"importance_kl": KL_BOUNDS})
    return ForcedAnswerImportance(estimates["forced_accuracy"], estimates["importance_accuracy"], estimates["importance_kl"])


def _statistic(sets: list[RolloutArrays], config: BlackBoxConfig):
    def statistic(i: int, draws: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        current = tally(sets[i], draws[i])
        accuracy = share(current.correct, current.graded, config.empty)
        if i + 1 >= len(sets):
            last = np.zeros_like(accuracy) if config.paper else np.full_like(accuracy, np.nan)
            return {"forced_accuracy": accuracy, "importance_accuracy": last, "importance_kl": last}
        after = tally(sets[i + 1], draws[i + 1])
        return {"forced_accuracy": accuracy,
                "importance_accuracy": share(after.correct, after.graded, config.empty) - accuracy,
                "importance_kl": kl_from_counts(current.answers, after.answers, config.smoothing, config.empty)}

    return statistic


def _reasons(sets: list[RolloutArrays], rollouts: TraceRollouts, config: BlackBoxConfig) -> dict[str, list[str | None]]:
    names = ("forced_accuracy", "importance_accuracy", "importance_kl")
    if config.paper:
        return {name: [None] * rollouts.n for name in names}
    out: dict[str, list[str | None]] = {name: [] for name in names}
    for i in range(rollouts.n):
        here = _problem(sets[i], f"F_{i}", rollouts.has_gold, graded=True)
        after = _problem(sets[i + 1], f"F_{i + 1}", rollouts.has_gold, graded=True) if i + 1 < len(sets) else "last sentence: no forced answers after it"
        out["forced_accuracy"].append(here)
        out["importance_accuracy"].append(here or after)
        kl_after = _problem(sets[i + 1], f"F_{i + 1}", True, graded=False) if i + 1 < len(sets) else after
        out["importance_kl"].append(_problem(sets[i], f"F_{i}", True, graded=False) or kl_after)
    return out


def _problem(arrays: RolloutArrays, label: str, has_gold: bool, graded: bool) -> str | None:
    if graded and not has_gold:
        return "no gold answer to grade against"
    problem = set_problem(arrays.size, int(arrays.answered.sum()), int(np.isfinite(arrays.correct).sum()) if graded else None)
    return f"{label}: {problem}" if problem else None
