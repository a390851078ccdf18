"""Per-position KL between two next-token distributions on sparse top-p supports (methods.md §6).

Each side keeps its nucleus: the smallest set of most likely tokens whose probability (at the nucleus
temperature) reaches `top_p`, at most `max_tokens`. The KL is taken over the union of both nuclei at
`temperature`:

* `mode="default"`: both distributions are the models' own softmax restricted to the union and
  renormalised (every union token gets its real logit on both sides).
* `mode="paper"`: as the published code: a token outside a side's nucleus gets logit -1e9 on that side,
  and the nucleus is chosen at temperature 1. A token in the clean nucleus that falls out of the other
  side's then contributes ~ p * 1e9 / T, which makes the published values spiky.

KL(P || Q) = sum p (ln p - ln q), clipped at 0, computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from jaxtyping import Bool, Float

__all__ = ["full_kl", "log_kl_by_span", "normalise_rows", "nucleus_mask", "sequence_logprob", "sparse_top_p_kl"]

PAPER_MISSING_LOGIT = -1e9


def nucleus_mask(
    logits: Float[torch.Tensor, "pos vocab"], *, temperature: float, top_p: float, max_tokens: int
) -> Bool[torch.Tensor, "pos vocab"]:
    """True for the tokens of each position's nucleus (the top token always; then until mass >= top_p)."""
    scaled = logits.float() / temperature
    top = scaled.topk(min(max_tokens, scaled.shape[-1]), dim=-1)
    probs = (top.values - scaled.logsumexp(dim=-1, keepdim=True)).exp()
    mass_before = probs.cumsum(dim=-1) - probs
    keep = mass_before < top_p
    keep[..., 0] = True
    return torch.zeros_like(scaled, dtype=torch.bool).scatter_(-1, top.indices, keep)


def sparse_top_p_kl(
    p_logits: Float[torch.Tensor, "pos vocab"],
    q_logits: Float[torch.Tensor, "pos vocab"],
    *,
    temperature: float = 0.6,
    top_p: float = 0.9999,
    max_tokens: int = 100,
    mode: Literal["default", "paper"] = "default",
) -> Float[torch.Tensor, " pos"]:
    """KL(P || Q) per position over the union of the two nuclei (see the module docstring for the modes)."""
    nucleus_temperature = 1.0 if mode == "paper" else temperature
    in_p = nucleus_mask(p_logits, temperature=nucleus_temperature, top_p=top_p, max_tokens=max_tokens)
    in_q = nucleus_mask(q_logits, temperature=nucleus_temperature, top_p=top_p, max_tokens=max_tokens)
    union = in_p | in_q
    p_side = _union_logits(p_logits, in_p, union, mode)
    q_side = _union_logits(q_logits, in_q, union, mode)
    log_p = torch.log_softmax(p_side / temperature, dim=-1)
    log_q = torch.log_softmax(q_side / temperature, dim=-1)
    terms = torch.where(union & (log_p > -torch.inf), log_p.exp() * (log_p - log_q), 0.0)
    return terms.sum(dim=-1).clamp_min(0.0)


def _union_logits(logits: torch.Tensor, own: torch.Tensor, union: torch.Tensor, mode: str) -> torch.Tensor:
    # float64: a KL of 1e-6 is a sum of terms p * (ln p - ln q) whose float32 rounding (~1e-7 each) would
    # swamp it, and ln(KL + 1e-9) magnifies exactly those small values.
    values = logits.double()
    if mode == "paper":
        values = torch.where(own, values, PAPER_MISSING_LOGIT)
    return values.masked_fill(~union, -torch.inf)


def log_kl_by_span(
    kl: Float[np.ndarray, " pos"], spans: Sequence[tuple[int, int]], epsilon: float = 1e-9
) -> Float[np.ndarray, " sent"]:
    """Mean over each span's positions of ln(KL + epsilon); NaN for an empty span."""
    logs = np.log(np.asarray(kl, dtype=np.float64) + epsilon)
    return np.array([logs[a:b].mean() if b > a else np.nan for a, b in spans])


def normalise_rows(matrix: Float[np.ndarray, "target source"]) -> Float[np.ndarray, "target source"]:
    """Display normalisation of a suppression matrix: keep target j > source s, subtract each row's mean
    over its sources; NaN elsewhere (and in row 0, which has no source)."""
    n_targets, n_sources = matrix.shape
    rows, cols = np.indices((n_targets, n_sources))
    kept = np.where(cols < rows, matrix, np.nan)
    counts = (cols < rows).sum(axis=1, keepdims=True)
    means = np.nansum(kept, axis=1, keepdims=True) / np.maximum(counts, 1)
    return np.where(cols < rows, kept - means, np.nan)


def full_kl(
    p_logits: Float[torch.Tensor, "pos vocab"], q_logits: Float[torch.Tensor, "pos vocab"]
) -> Float[torch.Tensor, " pos"]:
    """KL(P || Q) per position over the whole vocabulary at temperature 1, clipped at 0 (float64)."""
    log_p = torch.log_softmax(p_logits.double(), dim=-1)
    log_q = torch.log_softmax(q_logits.double(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).clamp_min(0.0)


def sequence_logprob(logits: Float[torch.Tensor, "pos vocab"], targets: torch.Tensor) -> float:
    """Sum over positions of ln p(target token) (teacher forcing: `logits[k]` predicts `targets[k]`)."""
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    return float(log_probs.gather(-1, targets.reshape(-1, 1)).sum())
