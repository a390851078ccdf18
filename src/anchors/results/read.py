"""Reading a results folder (written through the contract) into TraceResults: every method present, side by side.

Per-sentence numbers of each method become columns of one sentence table (black-box metrics as written;
`receiver_score`; `suppression_effect` = mean row-centred effect of suppressing the sentence on later sentences,
`suppression_answer` = its log-KL on the answer; `patching_effect` = the forced answer's KL when the sentence is
swapped for its counterfactual; `validity`; `mistake_match_drop`; `resilience`, `ci_pp_kl`). A file that is
there but cannot be read becomes a note and a `damaged` entry; the rest of the trace is still read.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anchors.errors import InputError
from anchors.results.contract import (
    MethodEntry, ResultsDir, TraceManifest, read_json, read_jsonl, read_npz, read_trace_manifest, trace_file,
)  # fmt: skip
from anchors.results.kinds import COMMANDS, KINDS, STUDIES, TRACE_FILES, ResultKind
from anchors.results.trace import TraceResults, data_notes, normalise_sentence_table


def read_results(root: str | Path, on_skip: Callable[[str], None] | None = None) -> list[TraceResults]:
    """Every trace of a results folder. A trace folder whose manifest cannot be read is skipped with a message
    naming it (to `on_skip`, default a warning); the others are read."""
    out = []
    for folder in ResultsDir(root).trace_dirs():
        try:
            out.append(read_trace_results(folder))
        except InputError as exc:
            (on_skip or _warn)(f"{folder.name}: {exc}; trace skipped")
    return out


def read_trace_results(folder: str | Path) -> TraceResults:
    """One trace folder → TraceResults (its manifest must be readable; any other damaged file is a note)."""
    folder = Path(folder)
    manifest = read_trace_manifest(folder)
    if manifest is None:
        raise InputError(f"{folder}: no manifest.json (not a trace folder written by anchors)")
    parts = _Parts(folder, manifest)
    for kind, entry in manifest.methods.items():
        loader = _loader(kind)
        if loader is None:
            parts.notes.append(f"{kind}: results of a kind this anchors does not know; left out")
            continue
        try:
            loader(parts, entry)
        except InputError as exc:
            parts.damage(f"{kind}: {exc}")
        except (KeyError, ValueError, TypeError, IndexError) as exc:  # a file of the right format with wrong content
            parts.damage(f"{kind}: unexpected content in {', '.join(entry.files)} ({type(exc).__name__}: {exc})")
    absent = [f"{kind} ({command})" for kind, command in COMMANDS.items()
              if kind not in manifest.methods and kind not in STUDIES]
    if absent and "table" not in manifest.methods:
        parts.notes.append("not run on this trace yet: " + ", ".join(absent))
    return parts.result()


class _Parts:
    """What the loaders fill in for one trace."""

    def __init__(self, folder: Path, manifest: TraceManifest) -> None:
        self.folder, self.manifest = folder, manifest
        self.sentences = pd.DataFrame([s.model_dump() for s in manifest.sentences], columns=["index", "text", "start", "end"])
        self.tags: pd.DataFrame | None = None
        self.fields: dict[str, Any] = {"matrices": {}, "tables": {}, "alternatives": {}, "summaries": {}}
        self.notes: list[str] = []
        self.damaged: list[str] = []

    @property
    def n(self) -> int:
        return len(self.sentences)

    def damage(self, message: str) -> None:
        self.notes.append(message)
        self.damaged.append(message)

    def columns(self, table: pd.DataFrame) -> None:
        """Merge per-sentence columns (by `index`) into the sentence table; existing columns are kept."""
        new = [c for c in table.columns if c == "index" or c not in self.sentences.columns]
        self.sentences = self.sentences.merge(table[new], on="index", how="left")

    def array(self, values: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.shape != shape:
            raise InputError(f"{what} has shape {values.shape}, expected {shape} for this trace's {self.n} sentences")
        return values

    def result(self) -> TraceResults:
        table = self.sentences
        if self.tags is not None:
            table = table.drop(columns=["tag"], errors="ignore").merge(self.tags, on="index", how="left")
        if "tag" not in table.columns:
            table["tag"] = None
        trace = self.manifest.trace
        info = {"id": trace.get("id"), "problem": trace.get("problem"), "gold_answer": trace.get("gold_answer"),
                "model": trace.get("model") or _first_model(self.manifest), "answer": _answer(trace),
                "is_correct": (trace.get("metadata") or {}).get("is_correct"), "results_dir": str(self.folder),
                "run": {k: {"model": e.model, "settings": e.settings, "updated": e.updated}
                        for k, e in self.manifest.methods.items()}}
        info.update(self.fields.pop("info", {}))
        return TraceResults(trace_id=self.manifest.trace_id, sentences=table, methods=tuple(self.manifest.methods),
                            info=info, notes=tuple(self.notes) + tuple(data_notes(table)), damaged=tuple(self.damaged),
                            **self.fields)


def _answer(trace: dict[str, Any]) -> str | None:
    from anchors.traces.answers import extract_answer

    text = trace.get("answer_text")
    return extract_answer(text, "auto") if isinstance(text, str) else None


def _first_model(manifest: TraceManifest) -> str | None:
    return next((e.model for e in manifest.methods.values() if e.model), None)


# --- one loader per kind ------------------------------------------------------------------------------


def _rows(parts: _Parts, kind: str, role: str = "rows") -> pd.DataFrame:
    path = trace_file(parts.folder, kind, role)
    if not path.is_file():
        raise InputError(f"{path}: listed in the manifest but not found")
    return _numeric(pd.DataFrame(read_jsonl(path)))


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of numbers and nulls as floats (null = NaN), so a metric undefined everywhere is still a metric."""
    for column in frame.columns:
        values = frame[column]
        numbers = values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        if values.dtype == object and numbers.any() and (numbers | values.isna()).all():
            frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    return frame


def _arrays(parts: _Parts, kind: str, role: str = "arrays") -> dict[str, np.ndarray]:
    path = trace_file(parts.folder, kind, role)
    if not path.is_file():
        raise InputError(f"{path}: listed in the manifest but not found")
    return read_npz(path)


def _blackbox(parts: _Parts, entry: MethodEntry) -> None:
    rows = _rows(parts, "blackbox").drop(columns=["text", "start", "end"], errors="ignore")
    if len(rows) != parts.n:
        raise InputError(f"{trace_file(parts.folder, 'blackbox', 'rows')}: {len(rows)} rows for {parts.n} sentences")
    parts.columns(rows)
    if TRACE_FILES["blackbox"]["matrix"] in entry.files:
        data = _arrays(parts, "blackbox", "matrix")
        parts.fields["matrices"]["resampling"] = parts.array(data["matrix"], (parts.n, parts.n), "the sentence matrix")
    path = trace_file(parts.folder, "blackbox", "alternatives")
    if path.is_file():
        record = read_json(path)
        if not isinstance(record, dict):
            raise InputError(f"{path}: expected an object {{\"<index>\": [texts]}}")
        parts.fields["alternatives"] = {int(k): [str(t) for t in v] for k, v in record.items()
                                        if str(k).isdigit() and isinstance(v, list)}
    parts.fields["summaries"]["blackbox"] = entry.summary


def _tags(parts: _Parts, entry: MethodEntry) -> None:
    rows = _rows(parts, "tags")
    keep = [c for c in ("index", "tag", "tags", "depends_on", "confidence") if c in rows.columns]
    parts.tags = rows[keep].rename(columns={"confidence": "tag_confidence"})


def _receivers(parts: _Parts, entry: MethodEntry) -> None:
    data = _arrays(parts, "receivers")
    kurtosis = np.asarray(data["kurtosis"], dtype=float)
    parts.fields["head_scores"] = kurtosis
    parts.fields["vertical_scores"] = parts.array(data["vertical"], (*kurtosis.shape, parts.n), "vertical")
    parts.fields["receiver_heads"] = tuple((int(a), int(b)) for a, b in entry.meta.get("receiver_heads", []))
    scores = parts.array(data["receiver_scores"], (parts.n,), "receiver_scores")
    parts.columns(pd.DataFrame({"index": np.arange(parts.n), "receiver_score": scores}))


def _suppression(parts: _Parts, entry: MethodEntry) -> None:
    data = _arrays(parts, "suppression")
    normalised = parts.array(data["normalised"], (parts.n, parts.n), "normalised")
    parts.fields["matrices"]["suppression"] = normalised
    with warnings.catch_warnings():  # a sentence with no later sentence has no effect to average: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        effect = np.nanmean(np.where(np.isfinite(normalised), normalised, np.nan), axis=1)
    answer = parts.array(data["answer"], (parts.n,), "answer")
    parts.columns(pd.DataFrame({"index": np.arange(parts.n), "suppression_effect": effect, "suppression_answer": answer}))


def _patching(parts: _Parts, entry: MethodEntry) -> None:
    data = _arrays(parts, "patching")
    total = parts.array(data["total_kl"], (parts.n,), "total_kl")
    patched = np.asarray(data["patched_tokens"]) > 0
    parts.fields["patching"] = {**data, "sites": list(entry.meta.get("sites", [])), "answer": entry.meta.get("answer"),
                                "replacements": entry.meta.get("replacements", [])}
    parts.columns(pd.DataFrame({"index": np.arange(parts.n), "patching_effect": np.where(patched, total, np.nan)}))


def _early_answering(parts: _Parts, entry: MethodEntry) -> None:
    rows = _rows(parts, "early_answering")
    parts.fields["tables"]["early_answering"] = rows
    parts.fields["summaries"]["early_answering"] = entry.summary
    if len(rows):
        parts.fields["early_answering"] = rows.rename(columns={"x": "fraction", "match_rate": "agreement"})


def _per_sentence(row: ResultKind) -> Callable[[_Parts, MethodEntry], None]:
    """A loader of a table-writing kind: its tables (its `rows`, and `row.tables`), its summary, and `row.columns`
    (file column -> sentence-table column) into the sentence table, averaged per sentence when a sentence has
    several rows (`row.average`)."""
    kind, columns = row.name, dict(row.columns)

    def load(parts: _Parts, entry: MethodEntry) -> None:
        rows = _rows(parts, kind)
        parts.fields["tables"][kind] = rows
        for name, role in row.tables.items():
            parts.fields["tables"][name] = _rows(parts, kind, role)
        parts.fields["summaries"][kind] = entry.summary
        if columns and len(rows):
            picked = rows[["sentence_index", *columns]].rename(columns={"sentence_index": "index", **columns})
            parts.columns(picked.groupby("index", as_index=False).mean(numeric_only=True) if row.average else picked)

    return load


def _table(parts: _Parts, entry: MethodEntry) -> None:
    path = trace_file(parts.folder, "table", "metrics")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    table = normalise_sentence_table(table, parts.notes, str(path))
    for column in ("tags", "depends_on"):
        if column in table.columns:
            table[column] = table[column].map(_json_list)
    parts.sentences = table.drop(columns=["start", "end"], errors="ignore").merge(
        parts.sentences[["index", "start", "end"]], on="index", how="left") if len(table) == parts.n else table
    matrices = trace_file(parts.folder, "table", "matrices")
    if matrices.is_file():
        data = read_npz(matrices)
        n = len(table)
        parts.fields["matrices"].update({k.removeprefix("matrix_"): parts.array(v, (n, n), k) if n == parts.n else v
                                         for k, v in data.items() if k.startswith("matrix_")})
        for key, field in (("head_scores", "head_scores"), ("vertical_scores", "vertical_scores")):
            if key in data:
                parts.fields[field] = np.asarray(data[key], dtype=float)
        if "receiver_heads" in data:
            parts.fields["receiver_heads"] = tuple((int(a), int(b)) for a, b in data["receiver_heads"].reshape(-1, 2))
    early = trace_file(parts.folder, "table", "early")
    if early.is_file():
        parts.fields["early_answering"] = pd.read_csv(early)
    parts.fields["alternatives"] = {int(k): v for k, v in entry.meta.get("alternatives", {}).items()}
    parts.fields["info"] = entry.meta.get("info", {})
    given = {"sentence matrix": parts.fields["matrices"], "receiver-head arrays": parts.fields.get("head_scores") is not None,
             "early-answering curve": early.is_file(), "resampled alternatives": parts.fields["alternatives"]}
    missing = [what for what, present in given.items() if not present]
    if missing:
        parts.notes.append("not in these results of your own: " + ", ".join(missing))


def _json_list(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# The kinds whose files are not one table per sentence or condition; every other kind is read by `_per_sentence`
# from its row in anchors.results.kinds.
_OWN_LOADERS: dict[str, Callable[[_Parts, MethodEntry], None]] = {
    "blackbox": _blackbox, "tags": _tags, "receivers": _receivers, "suppression": _suppression, "patching": _patching,
    "early_answering": _early_answering, "table": _table,
}


def _loader(kind: str) -> Callable[[_Parts, MethodEntry], None] | None:
    if kind in _OWN_LOADERS:
        return _OWN_LOADERS[kind]
    row = KINDS.get(kind)
    return _per_sentence(row) if row is not None else None


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)
