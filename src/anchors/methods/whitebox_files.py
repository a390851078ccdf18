"""On-disk results of the white-box methods: one pydantic JSON record (with `schema_version`) plus one .npz of
arrays per method and trace, in the output folder layout `DIR/<trace id>/…` that `anchors figures` reads.

```
DIR/receivers.json              run-level: receiver heads, reliability, config          (ReceiverHeadsFile)
DIR/receivers.npz               mean_kurtosis [layer, head], kurtosis [trace, layer, head]
DIR/<trace id>/receivers.json   sentences, receiver heads                                (TraceReceiversFile)
DIR/<trace id>/receivers.npz    vertical [layer, head, sent], kurtosis [layer, head],
                                receiver_scores [sent], receiver_attention [k, sent, sent]
DIR/<trace id>/suppression.json sentences, answer span, config                           (SuppressionFile)
DIR/<trace id>/suppression.npz  raw [target, source], normalised [target, source], answer [source]
DIR/<trace id>/patching.json    sentences + replacements, forced answer, sites, config   (PatchingFile)
DIR/<trace id>/patching.npz     kl [site, layer, sent], logprob_delta [site, layer, sent], total_kl [sent],
                                total_logprob_delta [sent], patched_tokens [sent]
```

NaN in arrays means "undefined or not computed" as each method documents; JSON holds null for it. Arrays
are float64 (patched_tokens int64) and load with `np.load(path, allow_pickle=False)`. Files are written
atomically (a reader never sees half a file).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from anchors import __version__
from anchors.methods.patching import PatchingResult
from anchors.methods.receivers import ReceiverHeadsResult, TraceReceivers
from anchors.methods.suppression import SuppressionResult

WHITEBOX_SCHEMA_VERSION = 1

__all__ = [
    "WHITEBOX_SCHEMA_VERSION",
    "PatchingFile",
    "ReceiverHeadsFile",
    "SentenceRecord",
    "SuppressionFile",
    "TraceReceiversFile",
    "read_arrays",
    "write_patching",
    "write_receivers",
    "write_suppression",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = WHITEBOX_SCHEMA_VERSION
    anchors_version: str = __version__
    model: str
    config: dict[str, Any]  # the method's config dataclass, as given
    arrays: str  # the .npz next to this file


class SentenceRecord(BaseModel):
    """A sentence of the trace and its token span `[token_start, token_end)` in the analysed sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    text: str
    token_start: int | None = None
    token_end: int | None = None
    replacement: str | None = None  # patching only: the counterfactual T_i (None: not patched)


class ReceiverHeadsFile(_Record):
    kind: Literal["receiver_heads"] = "receiver_heads"
    n_layers: int
    n_heads: int
    trace_ids: list[str]  # order of the `trace` axis of kurtosis
    receiver_heads: list[tuple[int, int]]  # (layer, head), highest mean kurtosis first
    reliability: float | None = Field(description="split-half Pearson r; null: fewer than 2 traces or undefined")


class TraceReceiversFile(_Record):
    kind: Literal["receivers"] = "receivers"
    trace_id: str
    sentences: list[SentenceRecord]
    receiver_heads: list[tuple[int, int]]  # order of the first axis of receiver_attention


class SuppressionFile(_Record):
    kind: Literal["suppression"] = "suppression"
    trace_id: str
    sentences: list[SentenceRecord]
    answer_span: tuple[int, int]


class PatchingFile(_Record):
    kind: Literal["patching"] = "patching"
    trace_id: str
    sentences: list[SentenceRecord]
    answer: str
    sites: list[str]  # order of the `site` axis


def write_receivers(result: ReceiverHeadsResult, out: str | Path) -> list[Path]:
    """The run-level receiver-head files and each trace's; returns the paths written."""
    out = Path(out)
    heads = [list(h) for h in result.heads]
    layers, n_heads = result.mean_kurtosis.shape
    written = _write(out / "receivers", ReceiverHeadsFile(
        model=result.model, config=_config(result.config), arrays="receivers.npz", n_layers=layers, n_heads=n_heads,
        trace_ids=[t.trace_id for t in result.traces], receiver_heads=heads, reliability=_finite(result.reliability),
    ), mean_kurtosis=result.mean_kurtosis, kurtosis=result.kurtosis)
    for trace in result.traces:
        written += _write_trace_receivers(trace, result, out)
    return written


def _write_trace_receivers(trace: TraceReceivers, result: ReceiverHeadsResult, out: Path) -> list[Path]:
    record = TraceReceiversFile(
        model=result.model, config=_config(result.config), arrays="receivers.npz", trace_id=trace.trace_id,
        sentences=_sentences(trace.sentences, trace.spans), receiver_heads=[list(h) for h in result.heads],
    )
    return _write(out / trace.trace_id / "receivers", record, vertical=trace.vertical, kurtosis=trace.kurtosis,
                  receiver_scores=trace.scores, receiver_attention=trace.receiver_attention)


def write_suppression(result: SuppressionResult, out: str | Path) -> list[Path]:
    record = SuppressionFile(
        model=result.model, config=_config(result.config), arrays="suppression.npz", trace_id=result.trace_id,
        sentences=_sentences(result.sentences, result.spans), answer_span=result.answer_span,
    )
    return _write(Path(out) / result.trace_id / "suppression", record, raw=result.raw,
                  normalised=result.normalised, answer=result.answer)


def write_patching(result: PatchingResult, out: str | Path) -> list[Path]:
    sentences = [SentenceRecord(index=k, text=text, replacement=result.replacements[k])
                 for k, text in enumerate(result.sentences)]
    record = PatchingFile(
        model=result.model, config=_config(result.config), arrays="patching.npz", trace_id=result.trace_id,
        sentences=sentences, answer=result.answer, sites=list(result.sites),
    )
    return _write(Path(out) / result.trace_id / "patching", record, kl=result.kl, logprob_delta=result.logprob_delta,
                  total_kl=result.total_kl, total_logprob_delta=result.total_logprob_delta,
                  patched_tokens=result.patched_tokens)


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a .npz written here (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _write(stem: Path, record: BaseModel, **arrays: np.ndarray) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    npz, json_path = stem.with_suffix(".npz"), stem.with_suffix(".json")
    _atomic(npz, lambda handle: np.savez_compressed(handle, **{k: np.asarray(v) for k, v in arrays.items()}), "wb")
    _atomic(json_path, lambda handle: handle.write(record.model_dump_json(indent=2) + "\n"), "w")
    return [json_path, npz]


def _atomic(path: Path, write: Any, mode: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sentences(texts: tuple[str, ...], spans: tuple[tuple[int, int], ...]) -> list[SentenceRecord]:
    return [SentenceRecord(index=k, text=text, token_start=a, token_end=b) for k, (text, (a, b)) in enumerate(zip(texts, spans))]


def _config(config: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value
