"""Receiver heads (methods.md §6): sentence-level attention, vertical scores, kurtosis, top-k heads.

Entry point: `receiver_heads(model, traces, config)`. For each trace, every layer's attention pattern is
reduced to a sentence x sentence mean *as the forward pass goes* (`sentence_attention`): the queries run
in chunks on top of a KV cache, and a hook folds each chunk's `[head, chunk, keys]` pattern into running
block sums, so neither all layers' patterns nor one layer's full token x token pattern is ever held.
`naive_sentence_attention` is the reference it is tested against (cache every pattern, then average).

Only prompt + thinking is run: attention among thinking sentences cannot see the answer (causal masking).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from jaxtyping import Float

from anchors.errors import AnchorsError, InputError
from anchors.methods.whitebox.sequence import TraceSequence, check_length, encode_trace
from anchors.metrics.attention import (
    head_kurtosis,
    receiver_scores,
    sentence_sums,
    split_half_reliability,
    top_heads,
    vertical_scores,
)
from anchors.models.hooks import Hook, HookedModel, hooked
from anchors.traces.records import Trace
from anchors.traces.segment import Mode
from anchors.types import Progress

if TYPE_CHECKING:
    import pandas as pd

    from anchors.models.handle import ModelHandle

T = TypeVar("T")

__all__ = [
    "ReceiverConfig",
    "ReceiverHeadsResult",
    "SentenceAttention",
    "TraceReceivers",
    "naive_sentence_attention",
    "receiver_heads",
    "sentence_attention",
]


@dataclass(frozen=True)
class ReceiverConfig:
    """How receiver heads are found. Defaults follow the published method (methods.md §6)."""

    proximity_ignore: int = 4  # vertical score of j averages rows i >= j + proximity_ignore
    control_depth: bool = False  # rank-normalise each row before averaging (the authors' optional control)
    top_k: int = 20  # receiver heads = top_k heads by kurtosis averaged over traces
    # Layer 0 attends in ways unrelated to reasoning content (it sees raw token embeddings); the
    # published analysis leaves it out of the head ranking and of the split-half reliability.
    exclude_layers: tuple[int, ...] = (0,)
    mode: Mode = "default"  # sentence segmentation ("paper" reproduces the authors' chunks)
    query_chunk: int | None = None  # queries per chunk; None: automatic (~64 MiB of scores per layer chunk)


@dataclass(frozen=True)
class SentenceAttention:
    """Sentence-averaged attention of every head of one trace: `matrix[layer, head, i, j]` is the mean
    attention from the tokens of sentence i to the tokens of sentence j (0 above the diagonal)."""

    trace_id: str
    sentences: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    matrix: Float[np.ndarray, "layer head sent sent"]

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        layers, heads, rows, cols = np.indices(self.matrix.shape).reshape(4, -1)
        return pd.DataFrame({"trace_id": self.trace_id, "layer": layers, "head": heads, "query_sentence": rows,
                             "key_sentence": cols, "attention": self.matrix.reshape(-1)})


@dataclass(frozen=True)
class TraceReceivers:
    """One trace's receiver-head analysis."""

    trace_id: str
    sentences: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # token spans in the trace's token sequence
    vertical: Float[np.ndarray, "layer head sent"]  # vertical score of each sentence under each head
    kurtosis: Float[np.ndarray, "layer head"]  # kurtosis of each head's vertical scores
    scores: Float[np.ndarray, " sent"]  # receiver-head score: mean vertical score over the receiver heads
    receiver_attention: Float[np.ndarray, "head sent sent"]  # sentence attention of each receiver head, in rank order


@dataclass(frozen=True)
class ReceiverHeadsResult:
    """Receiver heads across traces, and each trace's per-sentence receiver-head scores."""

    model: str
    config: ReceiverConfig
    heads: tuple[tuple[int, int], ...]  # (layer, head), highest mean kurtosis first
    mean_kurtosis: Float[np.ndarray, "layer head"]  # NaN-omitting mean over traces
    kurtosis: Float[np.ndarray, "trace layer head"]
    reliability: float | None  # split-half Pearson r; None (not computed) with fewer than 2 traces
    traces: tuple[TraceReceivers, ...] = field(repr=False)

    def to_pandas(self) -> pd.DataFrame:
        """One row per sentence: trace, index, text, token span, receiver-head score."""
        import pandas as pd

        rows = [
            {"trace_id": t.trace_id, "sentence": k, "text": text, "token_start": span[0], "token_end": span[1],
             "receiver_score": float(t.scores[k])}
            for t in self.traces
            for k, (text, span) in enumerate(zip(t.sentences, t.spans))
        ]
        return pd.DataFrame(rows)

    def heads_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, mean kurtosis, receiver rank (None if not a receiver head)."""
        import pandas as pd

        rank = {head: r for r, head in enumerate(self.heads)}
        layers, heads = np.indices(self.mean_kurtosis.shape).reshape(2, -1)
        return pd.DataFrame({"layer": layers, "head": heads, "mean_kurtosis": self.mean_kurtosis.reshape(-1),
                             "receiver_rank": [rank.get((int(l), int(h))) for l, h in zip(layers, heads)]})


def receiver_heads(
    model: ModelHandle | HookedModel,
    traces: Sequence[Trace],
    config: ReceiverConfig = ReceiverConfig(),
    *,
    progress: Progress[Trace] | None = None,
    on_error: Callable[[Trace, AnchorsError], None] | None = None,
) -> ReceiverHeadsResult:
    """Find the receiver heads of `traces` and score every sentence by them (methods.md §6).

    A trace that cannot be analysed (too long, a sentence without tokens) raises, or, with `on_error`,
    is reported to it and left out."""
    runner = hooked(model)
    with tempfile.TemporaryDirectory(prefix="anchors-receivers-") as scratch:
        # Sentence matrices wait on disk until the heads are known: memory stays at one trace's worth.
        per_trace = []
        for trace in _iterate(traces, progress):
            try:
                per_trace.append(_analyse(runner, trace, config, Path(scratch)))
            except AnchorsError as error:
                if on_error is None:
                    raise
                on_error(trace, error)
        if not per_trace:
            raise InputError("no trace could be analysed (see the errors above)" if traces else "no traces given")
        kurtosis = np.stack([kurt for _, _, kurt, _ in per_trace])
        mean = _nanmean(kurtosis)
        heads = top_heads(mean, config.top_k, config.exclude_layers)
        results = tuple(_trace_result(item, heads) for item in per_trace)
    return ReceiverHeadsResult(
        model=runner.handle.name, config=config, heads=tuple(heads), mean_kurtosis=mean, kurtosis=kurtosis,
        reliability=split_half_reliability(kurtosis, config.exclude_layers), traces=results,
    )


def _iterate(traces: Sequence[Trace], progress: Progress[Trace] | None) -> Iterator[Trace]:
    return progress(traces, "sentence attention") if progress else iter(traces)


def _analyse(runner: HookedModel, trace: Trace, config: ReceiverConfig, scratch: Path) -> tuple[Any, ...]:
    attention = sentence_attention(runner, trace, mode=config.mode, query_chunk=config.query_chunk)
    vertical = vertical_scores(attention.matrix, config.proximity_ignore, config.control_depth)
    path = scratch / f"{len(list(scratch.iterdir()))}.npy"
    np.save(path, attention.matrix)
    return attention, vertical, head_kurtosis(vertical), path


def _trace_result(item: tuple[Any, ...], heads: Sequence[tuple[int, int]]) -> TraceReceivers:
    attention, vertical, kurtosis, path = item
    matrices = np.load(path, mmap_mode="r")
    n = len(attention.sentences)
    picked = np.stack([matrices[layer, head] for layer, head in heads]) if heads else np.zeros((0, n, n))
    return TraceReceivers(
        trace_id=attention.trace_id, sentences=attention.sentences, spans=attention.spans, vertical=vertical,
        kurtosis=kurtosis, scores=receiver_scores(vertical, heads), receiver_attention=np.array(picked),
    )


def _nanmean(values: np.ndarray) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a head NaN in every trace stays NaN
        return np.nanmean(values, axis=0)


# --- sentence-level attention -------------------------------------------------------------------


def sentence_attention(
    model: ModelHandle | HookedModel, trace: Trace | TraceSequence, *, mode: Mode = "default",
    query_chunk: int | None = None,
) -> SentenceAttention:
    """Sentence x sentence mean attention of every layer and head, reduced while the forward pass runs."""
    import torch

    runner = hooked(model)
    sequence = trace if isinstance(trace, TraceSequence) else encode_trace(trace, runner.handle, mode=mode)
    length = _attention_length(runner, sequence)
    n, first = sequence.n_sentences, sequence.spans[0][0]
    owners = torch.tensor(sequence.owners(length), device=runner.device)
    # float32 block sums, divided in place at the end: this array (layers x heads x sentences^2) is the
    # only thing that grows with the trace besides the KV cache, so it gets no second copy.
    sums = torch.zeros(runner.n_layers, runner.n_heads, n, n, dtype=torch.float32, device=runner.device)

    def fold(layer: int, offset: int, pattern: torch.Tensor) -> None:
        rows = owners[offset : offset + pattern.shape[-2]]
        if bool((rows < n).any()):  # chunks of prompt only carry nothing to fold
            keys = owners[first : pattern.shape[-1]]
            sums[layer] += sentence_sums(pattern[0, :, :, first:].float(), rows, keys, n)

    ids = torch.tensor([sequence.input_ids[:length]], device=runner.device)
    chunk = query_chunk or runner.auto_chunk(length)
    runner.run(ids, hooks=[Hook("pattern", range(runner.n_layers), fold)], query_chunk=chunk)
    sums /= torch.from_numpy(_block_sizes(sequence.spans)).to(sums)
    return _finish(sequence, sums.cpu().numpy())


def naive_sentence_attention(
    model: ModelHandle | HookedModel, trace: Trace | TraceSequence, *, mode: Mode = "default"
) -> SentenceAttention:
    """The reference computation: cache every layer's full attention pattern (TransformerLens
    `run_with_cache`), then average each sentence block. Memory grows as layers x heads x tokens^2."""
    import torch

    runner = hooked(model)
    sequence = trace if isinstance(trace, TraceSequence) else encode_trace(trace, runner.handle, mode=mode)
    length = _attention_length(runner, sequence)
    ids = torch.tensor([sequence.input_ids[:length]], device=runner.device)
    with torch.no_grad():
        _, cache = runner.bridge.run_with_cache(ids, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    out = np.zeros((runner.n_layers, runner.n_heads, sequence.n_sentences, sequence.n_sentences), dtype=np.float32)
    for layer in range(runner.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0]
        for i, (a, b) in enumerate(sequence.spans):
            for j, (c, d) in enumerate(sequence.spans):
                out[layer, :, i, j] = pattern[:, a:b, c:d].float().mean(dim=(-1, -2)).cpu().numpy()
    return _finish(sequence, out)


def _attention_length(runner: HookedModel, sequence: TraceSequence) -> int:
    length = sequence.thinking_end
    check_length(sequence, length, runner.handle.context_length, "the prompt + thinking")
    return length


def _block_sizes(spans: Sequence[tuple[int, int]]) -> np.ndarray:
    sizes = np.array([b - a for a, b in spans], dtype=np.float64)
    return np.outer(sizes, sizes)


def _finish(sequence: TraceSequence, matrix: np.ndarray) -> SentenceAttention:
    return SentenceAttention(
        trace_id=sequence.trace_id, sentences=tuple(s.text for s in sequence.sentences),
        spans=tuple(sequence.spans), matrix=matrix,
    )
