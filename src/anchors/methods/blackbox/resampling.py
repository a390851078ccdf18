"""Resampling importance (methods.md §4): how much keeping sentence i, rather than resampling it and
everything after, changes the answer.

accuracy_i = acc(R_i); importance (acc) = acc(R_{i+1}) − acc(R_i); importance (KL) = KL(ans(R_i) ‖ ans(R_{i+1})).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from anchors.methods.blackbox.adjacent_sets import adjacent_set_estimates
from anchors.methods.blackbox.config import BlackBoxConfig, Estimate, estimates_frame
from anchors.methods.blackbox.rollout_sets import TraceRollouts, resampled_arrays

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
    estimates = adjacent_set_estimates(sets, rollouts, config, label="R", last_reason=LAST_SENTENCE, seed_tag=1)
    return ResamplingImportance(estimates["accuracy"], estimates["importance_accuracy"], estimates["importance_kl"])
