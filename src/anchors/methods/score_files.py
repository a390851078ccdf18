"""The files `anchors score` writes for one trace, in `DIR/<trace id>/`, and reading them back.

* scores.jsonl — one `SentenceScore` per sentence (NaN written as the JSON constant NaN; null = not computed)
* scores.csv   — the same rows (columns of metrics not computed are left out; an empty cell is NaN)
* matrix.npz   — the sentence→sentence matrix: `matrix` [sent, sent], `match_rate` [prefix, sent], `sentences`
                 (only when the matrix was computed)
* run.json     — a `RunRecord`: settings, model and embedder identity, library versions, seed, timing, counts
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from anchors import __version__
from anchors.errors import InputError
from anchors.methods.blackbox import BlackBoxConfig
from anchors.methods.scores import METRICS, SCHEMA_VERSION, SentenceScore, TraceScores
from anchors.methods.sentence_matrix import SentenceMatrix
from anchors.traces.segment import Sentence

SCORES_JSONL, SCORES_CSV, MATRIX_NPZ, RUN_JSON = "scores.jsonl", "scores.csv", "matrix.npz", "run.json"
ALTERNATIVES_JSON = "alternatives.json"
_VERSIONED = ("torch", "transformers", "sentence-transformers", "numpy", "scipy", "math-verify")


class RunRecord(BaseModel):
    """How one trace's scores were made (run.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    trace_id: str
    created: str
    settings: dict[str, Any]
    model: str | None = None  # the sampler's identity (None: rollouts read from disk)
    embedder: str | None = None
    source: str | None = None  # where the traces or rollouts came from
    store: str | None = None
    versions: dict[str, str]
    timing: dict[str, float]
    counts: dict[str, int]
    not_computed: list[str]
    matrix_written: bool
    extra: dict[str, Any] = {}  # anything else the run recorded (e.g. adaptive sampling's rounds)


def run_record(scores: TraceScores, *, embedder: str | None, source: str | None, store: str | None) -> RunRecord:
    run = scores.run
    return RunRecord(
        trace_id=scores.trace_id, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        settings=scores.config.resolved(), model=run.get("sampler"), embedder=embedder, source=source, store=store,
        versions=library_versions(), timing={k: float(v) for k, v in run.items() if k.endswith("_seconds")},
        counts={k: int(v) for k, v in run.items() if k.startswith("rollouts_")},
        not_computed=list(scores.not_computed), matrix_written=scores.matrix is not None,
        extra={k: v for k, v in run.items() if k != "sampler" and not k.endswith("_seconds") and not k.startswith("rollouts_")},
    )


def library_versions() -> dict[str, str]:
    versions = {"anchors": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_scores(scores: TraceScores, out_dir: str | Path, record: RunRecord) -> Path:
    """Write the four files of one trace into `out_dir/<trace id>/` (each replaced atomically); returns the folder."""
    folder = Path(out_dir) / scores.trace_id
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_text(folder / SCORES_JSONL, "".join(row.model_dump_json() + "\n" for row in scores.rows))
    frame = scores.to_pandas()
    dropped = [c for c in frame.columns if c != "tag" and all(getattr(row, c) is None for row in scores.rows)]
    _atomic_text(folder / SCORES_CSV, frame.drop(columns=dropped).to_csv(index=False))
    if scores.matrix is not None:
        _atomic_npz(folder / MATRIX_NPZ, matrix=scores.matrix.matrix, match_rate=scores.matrix.match_rate,
                    sentences=np.array(scores.matrix.sentences, dtype=str), schema_version=np.array(SCHEMA_VERSION))
    else:
        (folder / MATRIX_NPZ).unlink(missing_ok=True)  # a stale matrix from an earlier run must not remain
    _atomic_text(folder / ALTERNATIVES_JSON, json.dumps({str(i): list(t) for i, t in scores.alternatives.items()},
                                                       ensure_ascii=False) + "\n")
    _atomic_text(folder / RUN_JSON, record.model_dump_json(indent=2) + "\n")
    return folder


def add_timing(folder: str | Path, seconds: dict[str, float]) -> None:
    """Merge `seconds` into run.json's timing: phases timed after the results were written (the report)."""
    path = Path(folder) / RUN_JSON
    record = _read_record(path)
    _atomic_text(path, record.model_copy(update={"timing": {**record.timing, **seconds}}).model_dump_json(indent=2) + "\n")


def read_scores(folder: str | Path) -> TraceScores:
    """Read back what `write_scores` wrote (rows validated; a newer schema is refused with a clear error)."""
    folder = Path(folder)
    record = _read_record(folder / RUN_JSON)
    rows = []
    for number, line in enumerate((folder / SCORES_JSONL).read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rows.append(SentenceScore.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            raise InputError(f"{folder / SCORES_JSONL}:{number}: {exc}") from None
    sentences = tuple(Sentence(r.index, r.text, r.start, r.end, "") for r in rows)
    settings = {k: v for k, v in record.settings.items() if k in BlackBoxConfig.__dataclass_fields__}
    return TraceScores(record.trace_id, sentences, tuple(rows), _read_matrix(folder / MATRIX_NPZ),
                       BlackBoxConfig(**settings), tuple(record.not_computed), {"sampler": record.model, **record.timing},
                       _read_alternatives(folder / ALTERNATIVES_JSON))


def _read_alternatives(path: Path) -> dict[int, tuple[str, ...]]:
    if not path.is_file():  # written by versions before alternatives were kept
        return {}
    return {int(i): tuple(texts) for i, texts in json.loads(path.read_text(encoding="utf-8")).items()}


def _read_record(path: Path) -> RunRecord:
    try:
        record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise InputError(f"{path}: not a readable run record ({exc})") from None
    if record.schema_version > SCHEMA_VERSION:
        raise InputError(f"{path}: schema_version {record.schema_version} is newer than this anchors reads; upgrade anchors")
    return record


def _read_matrix(path: Path) -> SentenceMatrix | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return SentenceMatrix(data["matrix"], data["match_rate"], tuple(data["sentences"].tolist()))


def _atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _atomic_npz(path: Path, **arrays: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(temporary, path)


__all__ = ["METRICS", "RunRecord", "library_versions", "read_scores", "run_record", "write_scores"]
