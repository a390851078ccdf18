"""The sentence→sentence matrix (methods.md §4): how keeping source sentence i changes how often a later
target sentence j (or a sentence meaning the same) appears.

A rollout of R_i matches j if any of its sentences has cosine ≥ threshold with S_j; M[i, j] =
match_rate(R_{i+1}) − match_rate(R_i) for j > i (NaN elsewhere). Values are multiples of 1/N. The rows counted
are those the counterfactual method counts (paper mode: rollouts with an answer). No intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.rollout_sets import TraceRollouts, population
from anchors.models.embeddings import Embedder


@dataclass(frozen=True)
class SentenceMatrix:
    """matrix[i, j]: effect of source i on target j (NaN for j ≤ i or when undefined); match_rate[p, j]: share of
    the rollouts of prefix p (R_p) matching sentence j (NaN when R_p is empty)."""

    matrix: Float[np.ndarray, "sent sent"]
    match_rate: Float[np.ndarray, "prefix sent"]
    sentences: tuple[str, ...]

    def to_pandas(self) -> pd.DataFrame:
        """Long format: source, target, importance (only the defined cells)."""
        sources, targets = np.nonzero(np.isfinite(self.matrix))
        return pd.DataFrame({"source": sources, "target": targets, "importance": self.matrix[sources, targets]})


def sentence_matrix(rollouts: TraceRollouts, embedder: Embedder, config: BlackBoxConfig = BlackBoxConfig()) -> SentenceMatrix:
    """The sentence→sentence matrix of one trace (needs every sentence of every rollout, not just the first)."""
    answered_only = config.paper and rollouts.answers_known
    groups = [population(p, answered_only) for p in rollouts.prefixes]
    targets = [s.text for s in rollouts.sentences]
    texts = list(dict.fromkeys(targets + [t for g in groups for r in g for t in r.sentences]))
    vectors = embedder.embed(texts) if texts else np.zeros((0, 1))
    row = {t: k for k, t in enumerate(texts)}
    matches_target = (vectors @ vectors[[row[t] for t in targets]].T) >= config.similarity_threshold if targets else None
    rates = np.full((len(groups), len(targets)), np.nan)
    for p, group in enumerate(groups):
        if group and matches_target is not None:
            hits = [matches_target[[row[t] for t in r.sentences]].any(axis=0) if r.sentences else np.zeros(len(targets), bool)
                    for r in group]
            rates[p] = np.mean(hits, axis=0)
    matrix = np.full((len(targets), len(targets)), np.nan)
    for i in range(min(len(targets), len(groups) - 1)):
        matrix[i, i + 1 :] = rates[i + 1, i + 1 :] - rates[i, i + 1 :]
    return SentenceMatrix(matrix, rates, tuple(targets))
