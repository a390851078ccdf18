"""Counterfactual importance (methods.md §4): the answer shift when sentence i is replaced by something that
means something else, rather than resampled at all.

T_i^k = the first sentence rollout k of R_i wrote; it is dissimilar iff cos(emb(T), emb(S_i)) < threshold.
D_i = dissimilar rollouts of R_i, Sim_i = the rest, K_i = R_{i+1} ∪ Sim_i (S_i kept, or regenerated alike).

| | paper mode | default mode |
|---|---|---|
| importance (acc) | acc(D_i) − acc(R_{i+1}); 0 if D_i or R_{i+1} is empty | acc(K_i) − acc(D_i); NaN if either is empty |
| importance (KL) | KL(D_i ‖ K_i); 0 if D_i or R_{i+1} is empty | the same with Jeffreys smoothing; NaN if empty |
| different_trajectories_fraction | \\|D_i\\| / \\|R_i\\| | the same |
| overdeterminedness | 1 − #unique T strings / \\|R_i\\| | the same |

The paper counts only rollouts with an answer (also in the last two rows) and gives the last sentence 0 for
all four; the default mode counts every successful rollout in the last two rows and scores the last sentence
against the rollouts that continue after it. Default mode also tests KL(D_i ‖ K_i) > 0 by permuting the D/K
labels (`p_value`), which feeds the anchor flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from anchors.methods.blackbox.config import (
    KL_BOUNDS, SHARE_BOUNDS, BlackBoxConfig, Draws, Estimate, estimate_all, estimates_frame, set_problem,
)
from anchors.methods.blackbox.rollout_sets import (
    RolloutArrays,
    TraceRollouts,
    population,
    resampled_arrays,
    tally,
    unique_counts,
)
from anchors.metrics.distributions import kl_from_counts, share
from anchors.metrics.permutation import permutation_p_value
from anchors.models.embeddings import Embedder

ANSWER_METRICS = ("importance_accuracy", "importance_kl")
TRAJECTORY_METRICS = ("different_trajectories_fraction", "overdeterminedness")


@dataclass(frozen=True)
class CounterfactualImportance:
    """Per sentence: the four estimates, the permutation p-value of the KL (NaN: not tested), and per rollout of
    R_i the cosine of T_i with S_i. The answer-based estimates are None when the answers are not known."""

    importance_accuracy: Estimate | None
    importance_kl: Estimate | None
    different_trajectories_fraction: Estimate
    overdeterminedness: Estimate
    p_value: Float[np.ndarray, " sent"]
    similarity: tuple[Float[np.ndarray, " rollout"], ...]

    def to_pandas(self) -> pd.DataFrame:
        named = {"counterfactual_importance_accuracy": self.importance_accuracy,
                 "counterfactual_importance_kl": self.importance_kl,
                 "different_trajectories_fraction": self.different_trajectories_fraction,
                 "overdeterminedness": self.overdeterminedness}
        frame = estimates_frame({k: v for k, v in named.items() if v is not None})
        frame["counterfactual_p_value"] = self.p_value
        return frame


def counterfactual_importance(
    rollouts: TraceRollouts, embedder: Embedder, config: BlackBoxConfig = BlackBoxConfig()
) -> CounterfactualImportance:
    """Counterfactual importance, different-trajectories fraction and overdeterminedness of every sentence."""
    answered_only = config.paper and rollouts.answers_known
    sets = resampled_arrays(rollouts, answered_only)
    similarity = first_sentence_similarity(rollouts, embedder, answered_only)
    dissimilar = [s < config.similarity_threshold for s in similarity]
    draws = Draws([s.size for s in sets], config.replicates, (config.seed, 2))
    statistic = _Statistic(sets, dissimilar, config, rollouts.answers_known)
    reasons = _reasons(sets, dissimilar, rollouts, config)
    estimates = estimate_all(rollouts.n, statistic, draws, config.level, reasons,
                             shifted={"overdeterminedness": SHARE_BOUNDS, "importance_kl": KL_BOUNDS})
    p_values = _p_values(sets, dissimilar, rollouts, config)
    return CounterfactualImportance(
        estimates.get("importance_accuracy"), estimates.get("importance_kl"),
        estimates["different_trajectories_fraction"], estimates["overdeterminedness"], p_values, tuple(similarity))


def first_sentence_similarity(rollouts: TraceRollouts, embedder: Embedder, answered_only: bool) -> list[np.ndarray]:
    """cos(emb(T_i^k), emb(S_i)) for every rollout k of R_i (in `population` order), every sentence i."""
    firsts = [[r.first_sentence for r in population(rollouts.prefixes[i], answered_only)] for i in range(rollouts.n)]
    texts = list(dict.fromkeys([s.text for s in rollouts.sentences] + [t for group in firsts for t in group]))
    row = {text: k for k, text in enumerate(texts)}
    vectors = embedder.embed(texts) if texts else np.zeros((0, 1))
    out = []
    for i, group in enumerate(firsts):
        target = vectors[row[rollouts.sentences[i].text]]
        out.append(np.array([float(vectors[row[t]] @ target) for t in group]) if group else np.zeros(0))
    return out


class _Statistic:
    """The four quantities of sentence i on given draws of R_i and R_{i+1}."""

    def __init__(self, sets: list[RolloutArrays], dissimilar: list[np.ndarray], config: BlackBoxConfig, answers: bool) -> None:
        self.sets, self.dissimilar, self.config, self.answers = sets, dissimilar, config, answers

    def __call__(self, i: int, draws: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        config, current = self.config, self.sets[i]
        has_next = i + 1 < len(self.sets)
        whole = tally(current, draws[i])
        if config.paper and not has_next:  # the paper gives its last sentence 0 for all four
            zeros = np.zeros_like(whole.size)
            return {name: zeros for name in (*(ANSWER_METRICS if self.answers else ()), *TRAJECTORY_METRICS)}
        different = tally(current, draws[i], self.dissimilar[i])
        out = {"different_trajectories_fraction": share(different.size, whole.size, config.empty),
               "overdeterminedness": 1.0 - share(unique_counts(current.first, draws[i]), whole.size, 1.0 - config.empty)}
        if self.answers:
            nan = np.full_like(whole.size, np.nan)
            out.update(self._importance(different, tally(current, draws[i], ~self.dissimilar[i]),
                                        tally(self.sets[i + 1], draws[i + 1]) if has_next else None, nan))
        return out

    def _importance(self, different, similar, after, nan) -> dict[str, np.ndarray]:
        config = self.config
        if after is None:  # default mode without rollouts after the last sentence
            return {"importance_accuracy": nan, "importance_kl": nan}
        kept = after + similar
        kl = kl_from_counts(different.answers, kept.answers, config.smoothing, config.empty)
        if config.paper:
            undefined = (different.size == 0) | (after.size == 0)
            accuracy = share(different.correct, different.graded, 0.0) - share(after.correct, after.graded, 0.0)
            return {"importance_accuracy": np.where(undefined, 0.0, accuracy), "importance_kl": np.where(undefined, 0.0, kl)}
        accuracy = share(kept.correct, kept.graded) - share(different.correct, different.graded)
        return {"importance_accuracy": accuracy, "importance_kl": kl}


def _reasons(sets: list[RolloutArrays], dissimilar: list[np.ndarray], rollouts: TraceRollouts,
             config: BlackBoxConfig) -> dict[str, list[str | None]]:
    names = (*ANSWER_METRICS, *TRAJECTORY_METRICS)
    if config.paper:
        return {name: [None] * rollouts.n for name in names}
    out: dict[str, list[str | None]] = {name: [] for name in names}
    for i in range(rollouts.n):
        empty = set_problem(sets[i].size, 1)
        for name in TRAJECTORY_METRICS:
            out[name].append(f"R_{i}: {empty}" if empty else None)
        kl_reason, accuracy_reason = _importance_reasons(i, sets, dissimilar[i], rollouts)
        out["importance_kl"].append(kl_reason)
        out["importance_accuracy"].append(accuracy_reason)
    return out


def _importance_reasons(i: int, sets: list[RolloutArrays], dissimilar: np.ndarray, rollouts: TraceRollouts) -> tuple[str | None, str | None]:
    """(why the KL is undefined, why the accuracy difference is undefined) for sentence i, None where defined."""
    current = sets[i]
    if current.size == 0:
        reason = f"R_{i}: no successful rollouts"
    elif not dissimilar.any():
        reason = f"no dissimilar resample: every T_{i} has cosine ≥ threshold with S_{i}"
    elif i + 1 >= len(sets):
        reason = "last sentence: no rollouts after it"
    elif not (current.answered & dissimilar).any():
        reason = f"D_{i}: no rollout has an extractable answer"
    elif not sets[i + 1].answered.any() and not (current.answered & ~dissimilar).any():
        reason = f"R_{i + 1} and Sim_{i}: no rollout has an extractable answer"
    else:
        reason = None
    if reason is None and not rollouts.has_gold:
        return None, "no gold answer to grade against"
    return reason, reason


def _p_values(sets: list[RolloutArrays], dissimilar: list[np.ndarray], rollouts: TraceRollouts,
              config: BlackBoxConfig) -> np.ndarray:
    """Permutation p-value of KL(D_i ‖ K_i) > 0 for each sentence (NaN where not tested)."""
    out = np.full(rollouts.n, np.nan)
    if not rollouts.answers_known or config.permutation_count == 0:
        return out

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return kl_from_counts(a, b, config.smoothing)

    for i in range(min(rollouts.n, len(sets) - 1)):
        current, after = sets[i], sets[i + 1]
        d_codes = current.answer[dissimilar[i] & current.answered]
        k_codes = np.concatenate([after.answer[after.answered], current.answer[~dissimilar[i] & current.answered]])
        rng = np.random.default_rng([config.seed, 3, i])
        out[i] = permutation_p_value(d_codes, k_codes, current.categories, kl, config.permutation_count, rng)
    return out
