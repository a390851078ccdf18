"""Forced-answer importance (methods.md §4): the answer the model gives when made to answer at once after
S_1..S_{i-1} (F_i) versus after S_1..S_i (F_{i+1}).

forced accuracy_i = acc(F_i); importance (acc) = acc(F_{i+1}) − acc(F_i); importance (KL) = KL(ans(F_i) ‖ ans(F_{i+1})).
Paper mode: rollouts without an answer left out, 0 where undefined, 0 for the last sentence. Default mode:
Jeffreys smoothing, NaN with a reason where undefined, the last sentence scored against F_{n+1} (the answer
forced after the whole thinking) when it was sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from anchors.methods.blackbox.adjacent_sets import adjacent_set_estimates
from anchors.methods.blackbox.config import BlackBoxConfig, Estimate, estimates_frame
from anchors.methods.blackbox.rollout_sets import TraceRollouts, forced_arrays


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
    estimates = adjacent_set_estimates(sets, rollouts, config, label="F",
                                       last_reason="last sentence: no forced answers after it", seed_tag=4)
    return ForcedAnswerImportance(estimates["accuracy"], estimates["importance_accuracy"], estimates["importance_kl"])
