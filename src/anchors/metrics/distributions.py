"""Accuracy and KL divergence from answer counts, vectorised over any leading axes (e.g. bootstrap replicates).

KL smoothing follows methods.md §4: over V = the answers seen on either side,
p_a = (c_a + α) / (N + α|V|) on both sides, KL = Σ p ln(p/q), clipped at 0. The paper uses α = 1e-9, which
makes KL heavy-tailed (up to ln(N/1e-9)); the default mode uses Jeffreys' α = 0.5.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

PAPER_ALPHA = 1e-9
JEFFREYS_ALPHA = 0.5


def kl_from_counts(
    p_counts: Float[np.ndarray, "*batch cat"], q_counts: Float[np.ndarray, "*batch cat"], alpha: float,
    empty: float = float("nan"),
) -> Float[np.ndarray, "*batch"]:
    """KL(P‖Q) of two answer-count vectors over the same categories; `empty` where either side has no answer."""
    p_counts, q_counts = np.asarray(p_counts, dtype=float), np.asarray(q_counts, dtype=float)
    support = (p_counts > 0) | (q_counts > 0)
    size = support.sum(-1, keepdims=True)
    n_p, n_q = p_counts.sum(-1, keepdims=True), q_counts.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (p_counts + alpha) / (n_p + alpha * size)
        q = (q_counts + alpha) / (n_q + alpha * size)
        terms = np.where(support & (p > 0), p * np.log(p / q), 0.0)
    kl = np.maximum(terms.sum(-1), 0.0)
    return np.where((n_p[..., 0] == 0) | (n_q[..., 0] == 0), empty, kl)


def share(numerator: np.ndarray, denominator: np.ndarray, empty: float = float("nan")) -> np.ndarray:
    """numerator / denominator elementwise, `empty` where the denominator is 0 (an accuracy of no rollouts)."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, empty)
