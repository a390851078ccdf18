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
from jaxtyping import Bool, Float, Int

__all__ = ["full_kl", "log_kl_by_span", "normalise_rows", "nucleus", "nucleus_mask", "sequence_logprob", "sparse_top_p_kl"]

PAPER_MISSING_LOGIT = -1e9


def nucleus(
    logits: Float[torch.Tensor, "pos vocab"], *, temperature: float, top_p: float, max_tokens: int
) -> tuple[Int[torch.Tensor, "pos k"], Bool[torch.Tensor, "pos k"]]:
    """Each position's `max_tokens` most likely token ids (best first) and which of them form the nucleus
    (the top token always; then until the mass before a token reaches `top_p`)."""
    scaled = logits.float() / temperature
    top = scaled.topk(min(max_tokens, scaled.shape[-1]), dim=-1)
    probs = (top.values - scaled.logsumexp(dim=-1, keepdim=True)).exp()
    keep = (probs.cumsum(dim=-1) - probs) < top_p
    keep[..., 0] = True
    return top.indices, keep


def nucleus_mask(
    logits: Float[torch.Tensor, "pos vocab"], *, temperature: float, top_p: float, max_tokens: int
) -> Bool[torch.Tensor, "pos vocab"]:
    """True for the tokens of each position's nucleus (see `nucleus`)."""
    indices, keep = nucleus(logits, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, indices, keep)


def sparse_top_p_kl(
    p_logits: Float[torch.Tensor, "pos vocab"],
    q_logits: Float[torch.Tensor, "pos vocab"],
    *,
    temperature: float = 0.6,
    top_p: float = 0.9999,
    max_tokens: int = 100,
    mode: Literal["default", "paper"] = "default",
) -> Float[torch.Tensor, " pos"]:
    """KL(P || Q) per position over the union of the two nuclei (see the module docstring for the modes).

    Works on the at most 2 x max_tokens union tokens of each position, gathered from the vocabulary, so
    its cost beyond the two top-k searches does not grow with the vocabulary."""
    nucleus_temperature = 1.0 if mode == "paper" else temperature
    options = {"temperature": nucleus_temperature, "top_p": top_p, "max_tokens": max_tokens}
    p_ids, p_keep = nucleus(p_logits, **options)
    q_ids, q_keep = nucleus(q_logits, **options)
    union, valid = _union(torch.cat([p_ids, q_ids], -1), torch.cat([p_keep, q_keep], -1))
    p_side = _union_logits(p_logits, union, valid, p_ids, p_keep, mode)
    q_side = _union_logits(q_logits, union, valid, q_ids, q_keep, mode)
    log_p = torch.log_softmax(p_side / temperature, dim=-1)
    log_q = torch.log_softmax(q_side / temperature, dim=-1)
    terms = torch.where(valid, log_p.exp() * (log_p - log_q), 0.0)
    return terms.sum(dim=-1).clamp_min(0.0)


def _union(ids: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of both nuclei per position, each once: (ids [pos, 2k], valid [pos, 2k])."""
    # Tokens outside a nucleus become -1, then sorting puts duplicates next to each other.
    ordered = torch.where(keep, ids, -1).sort(dim=-1).values
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    return ordered.clamp_min(0), first & (ordered >= 0)


def _union_logits(
    logits: torch.Tensor, union: torch.Tensor, valid: torch.Tensor, own_ids: torch.Tensor, own_keep: torch.Tensor,
    mode: str,
) -> torch.Tensor:
    # float64: a KL of 1e-6 is a sum of terms p * (ln p - ln q) whose float32 rounding (~1e-7 each) would
    # swamp it, and ln(KL + 1e-9) magnifies exactly those small values.
    values = logits.gather(-1, union).double()
    if mode == "paper":
        own = (union.unsqueeze(-1) == torch.where(own_keep, own_ids, -1).unsqueeze(-2)).any(-1)
        values = torch.where(own, values, PAPER_MISSING_LOGIT)
    return values.masked_fill(~valid, -torch.inf)


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
