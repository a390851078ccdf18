"""What resampling and forced-answer importance share: each sentence i compares a rollout set with the next one
(R_i vs R_{i+1}, F_i vs F_{i+1}) — accuracy of the first, the accuracy difference, and KL(ans(set_i) ‖ ans(set_{i+1})).

Paper mode: 0 where there is no set after (the last sentence), no reasons. Default mode: NaN with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anchors.methods.blackbox.config import (
    KL_BOUNDS,
    BlackBoxConfig,
    Draws,
    Estimate,
    estimate_all,
    set_problem,
)
from anchors.methods.blackbox.rollout_sets import RolloutArrays, TraceRollouts, tally
from anchors.metrics.distributions import kl_from_counts, share

NAMES = ("accuracy", "importance_accuracy", "importance_kl")


def adjacent_set_estimates(sets: list[RolloutArrays], rollouts: TraceRollouts, config: BlackBoxConfig, *,
                           label: str, last_reason: str, seed_tag: int) -> dict[str, Estimate]:
    """The three estimates (`NAMES`) of every sentence, with bootstrap intervals in default mode."""
    draws = Draws([s.size for s in sets], config.replicates, (config.seed, seed_tag))
    reasons = _reasons(sets, rollouts, config, label, last_reason)
    return estimate_all(rollouts.n, _statistic(sets, config), draws, config.level, reasons,
                        shifted={"importance_kl": KL_BOUNDS})


def _statistic(sets: list[RolloutArrays], config: BlackBoxConfig):
    def statistic(i: int, draws: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        current = tally(sets[i], draws[i])
        accuracy = share(current.correct, current.graded, config.empty)
        if i + 1 >= len(sets):
            last = np.zeros_like(accuracy) if config.paper else np.full_like(accuracy, np.nan)
            return {"accuracy": accuracy, "importance_accuracy": last, "importance_kl": last}
        after = tally(sets[i + 1], draws[i + 1])
        return {"accuracy": accuracy,
                "importance_accuracy": share(after.correct, after.graded, config.empty) - accuracy,
                "importance_kl": kl_from_counts(current.answers, after.answers, config.smoothing, config.empty)}

    return statistic


def _reasons(sets: list[RolloutArrays], rollouts: TraceRollouts, config: BlackBoxConfig, label: str,
             last_reason: str) -> dict[str, list[str | None]]:
    """Why each NaN is NaN (default mode; the paper reports 0 instead and needs no reason)."""
    if config.paper:
        return {name: [None] * rollouts.n for name in NAMES}
    out: dict[str, list[str | None]] = {name: [] for name in NAMES}
    for i in range(rollouts.n):
        has_next = i + 1 < len(sets)
        graded = _problem(sets[i], f"{label}_{i}", rollouts.has_gold, graded=True)
        graded_after = _problem(sets[i + 1], f"{label}_{i + 1}", rollouts.has_gold, graded=True) if has_next else last_reason
        answers_after = _problem(sets[i + 1], f"{label}_{i + 1}", True, graded=False) if has_next else last_reason
        out["accuracy"].append(graded)
        out["importance_accuracy"].append(graded or graded_after)
        out["importance_kl"].append(_problem(sets[i], f"{label}_{i}", True, graded=False) or answers_after)
    return out


def _problem(arrays: RolloutArrays, label: str, has_gold: bool, graded: bool) -> str | None:
    if graded and not has_gold:
        return "no gold answer to grade against"
    problem = set_problem(arrays.size, int(arrays.answered.sum()), int(np.isfinite(arrays.correct).sum()) if graded else None)
    return f"{label}: {problem}" if problem else None
