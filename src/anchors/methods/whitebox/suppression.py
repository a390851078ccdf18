"""Attention suppression matrix (methods.md §6).

For each source sentence s, every query's pre-softmax attention scores to the keys of s's tokens are set
to the lowest float (at `attn.hook_attn_scores`, in all or the selected layers and heads), and each
position's next-token distribution is compared with the clean run's: sparse top-p KL at temperature 0.6
(`anchors.metrics.token_kl`). `raw[j, s]` is the mean of ln(KL + 1e-9) over target sentence j's tokens;
`answer[s]` the same over the answer's tokens; `normalised` keeps j > s and subtracts each row's mean.

KV reuse: a query before s's span cannot attend to s (causal masking), so positions before the span are
exactly the clean run's. The clean run's keys and values for them seed the cache, and only positions from
the span on are recomputed (`reuse_kv=False` recomputes everything: the reference, for tests and the
benchmark). Their KL is 0 by construction, so `raw[j, s] = ln(1e-9)` for j < s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from jaxtyping import Float

from anchors.errors import InputError
from anchors.methods.whitebox.sequence import TraceSequence, check_length, encode_trace
from anchors.metrics.token_kl import log_kl_by_span, normalise_rows, sparse_top_p_kl
from anchors.models.hooks import Hook, HookedModel, RunOutput, hooked
from anchors.traces.records import Trace
from anchors.traces.segment import Mode
from anchors.types import Progress

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from anchors.models.handle import ModelHandle

T = TypeVar("T")
# Positions per KL chunk: this many floats / vocabulary size (32 MiB per float32 [pos, vocab] tensor).
KL_CHUNK_ELEMENTS = 2**23

__all__ = ["SuppressionConfig", "SuppressionResult", "suppression_matrix"]


@dataclass(frozen=True)
class SuppressionConfig:
    """What to suppress and how to compare. Defaults follow the published method (methods.md §6)."""

    layers: tuple[int, ...] | None = None  # layers whose attention is masked; None: all
    heads: tuple[int, ...] | None = None  # heads masked in those layers; None: all
    sources: tuple[int, ...] | None = None  # sentences to suppress; None: every sentence
    temperature: float = 0.6
    top_p: float = 0.9999
    max_tokens: int = 100  # nucleus size cap per side
    epsilon: float = 1e-9  # inside ln(KL + epsilon)
    # "paper": the authors' sentence chunks and their KL quirks (nucleus at temperature 1, -1e9 logits for
    # tokens outside a side's nucleus); "default": our segmentation and the renormalised union KL.
    mode: Mode = "default"
    reuse_kv: bool = True  # False: recompute every position for every sentence (the slow reference)
    query_chunk: int | None = None  # queries per forward chunk; None: automatic


@dataclass(frozen=True)
class SuppressionResult:
    """One trace's suppression matrix. Columns never computed (sources not asked for) are NaN."""

    trace_id: str
    model: str
    config: SuppressionConfig
    sentences: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    answer_span: tuple[int, int]
    raw: Float[np.ndarray, "sent sent"]  # [target j, source s]: mean ln(KL + eps) over j's tokens
    normalised: Float[np.ndarray, "sent sent"]  # j > s only, each row minus its mean over sources
    answer: Float[np.ndarray, " sent"]  # [source s]: mean ln(KL + eps) over the answer's tokens

    def to_pandas(self) -> pd.DataFrame:
        """One row per (target, source) pair: raw and normalised values."""
        import pandas as pd

        targets, sources = np.indices(self.raw.shape).reshape(2, -1)
        return pd.DataFrame({"trace_id": self.trace_id, "target": targets, "source": sources,
                             "raw": self.raw.reshape(-1), "normalised": self.normalised.reshape(-1)})


def suppression_matrix(
    model: ModelHandle | HookedModel,
    trace: Trace | TraceSequence,
    config: SuppressionConfig = SuppressionConfig(),
    *,
    progress: Progress[int] | None = None,
) -> SuppressionResult:
    """Suppress each sentence's keys in turn and measure the change of every later token's prediction."""
    runner = hooked(model)
    sequence = trace if isinstance(trace, TraceSequence) else encode_trace(trace, runner.handle, mode=config.mode)
    ids = _ids(runner, sequence)
    check_length(sequence, ids.shape[1], runner.handle.context_length, "the whole trace")
    _check_selection(runner, sequence, config)
    chunk = config.query_chunk or runner.auto_chunk(ids.shape[1])
    clean = runner.run(ids, query_chunk=chunk, keep_hidden=True)
    n = sequence.n_sentences
    raw, answer = np.full((n, n), np.nan), np.full(n, np.nan)
    sources = list(config.sources if config.sources is not None else range(n))
    for s in progress(sources, f"suppressing sentences of {sequence.trace_id}") if progress else sources:
        kl = _suppressed_kl(runner, ids, clean, sequence.spans[s], config, chunk)
        raw[:, s] = log_kl_by_span(kl, sequence.spans, config.epsilon)
        answer[s] = log_kl_by_span(kl, [sequence.answer_span], config.epsilon)[0]
    return SuppressionResult(
        trace_id=sequence.trace_id, model=runner.handle.name, config=config,
        sentences=tuple(s.text for s in sequence.sentences), spans=tuple(sequence.spans),
        answer_span=sequence.answer_span, raw=raw, normalised=normalise_rows(raw), answer=answer,
    )


def _suppressed_kl(
    runner: HookedModel, ids: torch.Tensor, clean: RunOutput, span: tuple[int, int], config: SuppressionConfig,
    chunk: int,
) -> np.ndarray:
    """KL(clean || suppressed) at every position (0 before the span, where nothing can change)."""
    start = span[0] if config.reuse_kv else 0
    cache = runner.new_cache(clean.cache, start)
    layers = config.layers if config.layers is not None else range(runner.n_layers)
    hook = Hook("attn_scores", layers, _key_mask(span, config.heads))
    suppressed = runner.run(ids[:, start:], hooks=[hook], cache=cache, query_chunk=chunk, keep_hidden=True)
    kl = np.zeros(ids.shape[1])
    kl[start:] = _position_kl(runner, clean.hidden[:, start:], suppressed.hidden, config)  # type: ignore[index]
    return kl


def _key_mask(span: tuple[int, int], heads: Sequence[int] | None) -> Callable[..., torch.Tensor]:
    a, b = span

    def mask(_layer: int, _offset: int, scores: torch.Tensor) -> torch.Tensor:
        import torch

        # The lowest float rather than -inf: a row whose every key were masked would turn to NaN.
        lowest = torch.finfo(scores.dtype).min
        if heads is None:
            scores[..., a:b] = lowest
        else:
            scores[:, list(heads), :, a:b] = lowest
        return scores

    return mask


def _position_kl(
    runner: HookedModel, clean_hidden: torch.Tensor, other_hidden: torch.Tensor, config: SuppressionConfig
) -> np.ndarray:
    import torch

    step = max(1, KL_CHUNK_ELEMENTS // runner.head.out_features)
    parts = []
    for lo in range(0, clean_hidden.shape[1], step):
        p = runner.logits(clean_hidden[0, lo : lo + step])
        q = runner.logits(other_hidden[0, lo : lo + step])
        parts.append(sparse_top_p_kl(p, q, temperature=config.temperature, top_p=config.top_p,
                                     max_tokens=config.max_tokens, mode=config.mode))
    return torch.cat(parts).double().cpu().numpy()


def _ids(runner: HookedModel, sequence: TraceSequence) -> torch.Tensor:
    import torch

    return torch.tensor([sequence.input_ids], device=runner.device)


def _check_selection(runner: HookedModel, sequence: TraceSequence, config: SuppressionConfig) -> None:
    checks = [("layer", config.layers, runner.n_layers), ("head", config.heads, runner.n_heads),
              ("sentence", config.sources, sequence.n_sentences)]
    for what, chosen, count in checks:
        bad = [k for k in chosen or () if not 0 <= k < count]
        if bad:
            raise InputError(f"trace {sequence.trace_id!r}: {what} {bad[0]} does not exist (0..{count - 1})")
