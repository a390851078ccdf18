"""The results contract: every method writes, and the report, figures and `--importance` read, through it. The
layout (which files each kind writes, their array orientations) is in `anchors.results.kinds`, the one module that
names a result file. Files are replaced atomically.

Writing a method into a trace folder adds it to the manifest. A rerun of the same method with the same settings and
model replaces its files; with other settings it is refused before any work starts, unless `overwrite` (the old
entry is then replaced). Sentences are fixed by the first method written (their segmentation mode): a method
asking for another split, or another trace under the same id, is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anchors._version import __version__
from anchors.errors import InputError
from anchors.paths import atomic_write
from anchors.results.kinds import INDEX, LEGACY_FILES, MANIFEST, REPORT, RUN_FILES, TRACE_FILES
from anchors.rollouts.store import STORE_FILE
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, split_sentences

SCHEMA_VERSION = 1
STORE = STORE_FILE


class ResultsConflict(InputError):
    """A command would overwrite results made with other settings, or another trace under the same id."""


class SentenceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    text: str
    start: int  # character span [start, end) in the trace's thinking
    end: int


class MethodEntry(BaseModel):
    """One method's results in a folder: how they were made and which files hold them."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    settings: dict[str, Any]
    settings_hash: str
    model: str | None = None  # the sampler's or model's identity
    files: list[str]
    summary: dict[str, Any] = {}  # the method's per-trace headline numbers
    meta: dict[str, Any] = {}  # what the arrays need to be read: receiver heads, sites, token spans, …
    versions: dict[str, str] = {}  # anchors and the libraries that decide the numbers
    created: str
    updated: str


class TraceManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    schema_version: int = SCHEMA_VERSION
    level: Literal["trace"] = "trace"
    trace: dict[str, Any]  # the trace record (Trace, as JSON)
    mode: Mode  # how the thinking was split into the sentences below
    sentences: list[SentenceEntry]
    methods: dict[str, MethodEntry] = Field(default_factory=dict)
    created: str
    updated: str

    @property
    def trace_id(self) -> str:
        return str(self.trace["id"])


class RunManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    schema_version: int = SCHEMA_VERSION
    level: Literal["run"] = "run"
    traces: list[str] = Field(default_factory=list)
    methods: dict[str, MethodEntry] = Field(default_factory=dict)
    created: str
    updated: str


Writer = Callable[[Path], None]  # writes one file at the given (temporary) path


def settings_hash(settings: Mapping[str, Any], model: str | None) -> str:
    payload = json.dumps({"settings": settings, "model": model}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ResultsDir:
    """A results folder: check before work, write each method's files and its manifest entry, find and read traces."""

    def __init__(self, root: str | Path, *, overwrite: bool = False, store: str | Path | None = None) -> None:
        self.root = Path(root)
        self.overwrite = overwrite
        self.store = Path(store) if store is not None else None

    # --- layout ------------------------------------------------------------------------------------

    def trace_dir(self, trace_id: str) -> Path:
        return self.root / trace_id

    def store_path(self) -> Path:
        """The rollout store: the one given, else RESULTS/rollouts.sqlite."""
        return self.store if self.store is not None else self.root / STORE

    def report_path(self, trace_id: str) -> Path:
        return report_path(self.trace_dir(trace_id))

    def index_path(self) -> Path:
        return self.root / INDEX

    # --- before any work ---------------------------------------------------------------------------

    def check_writable(self) -> None:
        """The folder can be created and written (checked before an hour of sampling, not after)."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"--out {self.root}: exists and is not a folder; give a folder for the results")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".anchors-write-test-", delete=True)
            probe.close()
        except OSError as exc:
            raise InputError(f"--out {self.root}: cannot write there ({exc.strerror or exc}); choose another folder") from None

    def check(self, kind: str, trace: Trace, mode: Mode, settings: Mapping[str, Any], model: str | None) -> None:
        """Refuse, before any work, a write that would mix this trace's results with another trace's, another
        sentence split, or the same method's results made with other settings (unless `overwrite`)."""
        manifest = self.trace_manifest(trace.id)
        if manifest is None:
            return
        where = self.trace_dir(trace.id)
        if _content(manifest.trace) != _content(trace.model_dump(mode="json")):
            raise ResultsConflict(f"{where}: holds another trace with the id {trace.id!r}; give another --out")
        if manifest.mode != mode:
            raise ResultsConflict(f"{where}: its sentences were split in {manifest.mode} mode, this run asks for {mode} "
                                  f"mode; run with --mode {manifest.mode} or give another --out")
        entry = manifest.methods.get(kind)
        if entry is not None and entry.settings_hash != settings_hash(settings, model) and not self.overwrite:
            changed = _changed(entry.settings, settings, entry.model, model)
            raise ResultsConflict(f"{where}: has {kind} results made with other settings ({changed}); pass --overwrite "
                                  f"to replace them, or give another --out")

    # --- writing -----------------------------------------------------------------------------------

    def write(self, kind: str, trace: Trace, mode: Mode, settings: Mapping[str, Any], model: str | None,
              files: Mapping[str, Writer], *, summary: Mapping[str, Any] | None = None,
              meta: Mapping[str, Any] | None = None) -> Path:
        """Write one method's files for one trace (role -> writer, named by TRACE_FILES) and its manifest entry."""
        self.check(kind, trace, mode, settings, model)
        manifest = self.trace_manifest(trace.id) or _new_trace_manifest(trace, mode)
        folder = self.trace_dir(trace.id)
        folder.mkdir(parents=True, exist_ok=True)
        names = _write_files(folder, TRACE_FILES[kind], files)
        _remove_stale(folder, manifest.methods.get(kind), names)
        manifest.methods[kind] = _entry(kind, settings, model, names, summary, meta, manifest.methods.get(kind))
        manifest.updated = _now()
        _atomic(folder / MANIFEST, lambda path: path.write_text(manifest.model_dump_json(indent=1) + "\n", encoding="utf-8"))
        self._add_trace(trace.id)
        return folder

    def write_run(self, kind: str, settings: Mapping[str, Any], model: str | None, files: Mapping[str, Writer], *,
                  summary: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> Path:
        """Write a run-level result (over all traces of the run) into the root and the run manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        names = _write_files(self.root, RUN_FILES[kind], files)
        manifest = self.run_manifest() or RunManifest(created=_now(), updated=_now())
        manifest.methods[kind] = _entry(kind, settings, model, names, summary, meta, manifest.methods.get(kind))
        manifest.updated = _now()
        self._save_run(manifest)
        return self.root

    def _add_trace(self, trace_id: str) -> None:
        manifest = self.run_manifest() or RunManifest(created=_now(), updated=_now())
        if trace_id not in manifest.traces:
            manifest.traces.append(trace_id)
            manifest.updated = _now()
            self._save_run(manifest)

    def _save_run(self, manifest: RunManifest) -> None:
        _atomic(self.root / MANIFEST, lambda path: path.write_text(manifest.model_dump_json(indent=1) + "\n", encoding="utf-8"))

    # --- reading -----------------------------------------------------------------------------------

    def trace_manifest(self, trace_id: str) -> TraceManifest | None:
        return read_trace_manifest(self.trace_dir(trace_id))

    def run_manifest(self) -> RunManifest | None:
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        record = _read_manifest(path)
        if record.get("level") != "run":
            raise InputError(f"{path}: a trace folder's manifest, not a results folder's; give its parent folder")
        return _validate(path, RunManifest, record)

    def trace_dirs(self) -> list[Path]:
        """The trace folders: the root itself when it is one, else every sub-folder with a trace manifest."""
        if not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder (expected a results folder written by anchors)")
        if _level(self.root) == "trace":
            return [self.root]
        found = sorted(d for d in self.root.iterdir() if d.is_dir() and _level(d) == "trace")
        if not found:
            legacy = sorted(d.name for d in self.root.iterdir() if d.is_dir() and _legacy(d))
            if legacy or _legacy(self.root):
                raise InputError(_LEGACY.format(folder=self.root))
            raise InputError(f"{self.root}: no trace result folders found (none holds a {MANIFEST}); write results "
                             "into it with anchors score / analyze / receivers / suppress / patch / causality / label --out")
        return found


# --- files ------------------------------------------------------------------------------------------


def read_trace_manifest(folder: str | Path) -> TraceManifest | None:
    """A trace folder's manifest (None when there is none); a damaged or newer one is an InputError naming it."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        if _legacy(Path(folder)):
            raise InputError(_LEGACY.format(folder=folder))
        return None
    record = _read_manifest(path)
    if record.get("level") != "trace":
        raise InputError(f"{path}: not a trace folder's manifest")
    return _validate(path, TraceManifest, record)


def trace_file(folder: str | Path, kind: str, role: str) -> Path:
    """Where `kind`'s `role` file of a trace folder lives (whether or not it exists)."""
    return Path(folder) / TRACE_FILES[kind][role]


def run_file(root: str | Path, kind: str, role: str) -> Path:
    return Path(root) / RUN_FILES[kind][role]


def report_path(trace_dir: str | Path) -> Path:
    """A trace folder's report (a relative folder gives a relative link, as the index uses)."""
    return Path(trace_dir) / REPORT


def csv_twin(path: Path) -> Path:
    return path.with_suffix(".csv")


class RowsWriter:
    """A table: `rows` as JSONL at the path, and as CSV next to it (lists as JSON text; `columns`: the CSV's).

    In every table NaN ("computed, but undefined") is the JSON constant NaN and null means "not computed" or "does
    not apply"; Python's json, pandas and anchors read both (a CSV cell is empty for either)."""

    def __init__(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        self.rows, self.columns = rows, columns

    def __call__(self, path: Path) -> None:
        path.write_text("".join(json.dumps(r, ensure_ascii=False, default=_plain) + "\n" for r in self.rows), encoding="utf-8")

    def csv(self, path: Path) -> None:
        import pandas as pd

        table = pd.DataFrame(self.rows, columns=self.columns)
        for column in table.columns:
            if table[column].map(lambda v: isinstance(v, (list, dict, tuple))).any():
                table[column] = table[column].map(lambda v: json.dumps(v, ensure_ascii=False))
        table.to_csv(path, index=False)


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def npz_writer(**arrays: Any) -> Writer:
    def write(path: Path) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        path.write_bytes(buffer.getvalue())

    return write


def text_writer(text: str) -> Writer:
    return lambda path: path.write_text(text, encoding="utf-8")


def json_writer(value: Any) -> Writer:
    return text_writer(json.dumps(value, ensure_ascii=False, indent=1, default=str) + "\n")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a results .npz (never unpickled); a damaged file is an InputError naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a results table; a damaged line is an InputError naming the file and line."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc}); the file is damaged") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: expected a JSON object per line")
            rows.append(row)
    return rows


def _write_files(folder: Path, names: Mapping[str, str], files: Mapping[str, Writer]) -> list[str]:
    unknown = set(files) - set(names)
    if unknown:
        raise ValueError(f"unknown file role(s) {sorted(unknown)}; known: {sorted(names)}")
    written = []
    for role, write in files.items():
        _atomic(folder / names[role], write)
        written.append(names[role])
        if isinstance(write, RowsWriter):
            _atomic(csv_twin(folder / names[role]), write.csv)
    return sorted(written)


def _remove_stale(folder: Path, old: MethodEntry | None, names: list[str]) -> None:
    """Files an earlier run of the same method wrote and this one did not (e.g. a matrix no longer computed)."""
    for name in set(old.files if old else ()) - set(names):
        (folder / name).unlink(missing_ok=True)
        csv_twin(folder / name).unlink(missing_ok=True)


def _atomic(path: Path, write: Writer) -> None:
    atomic_write(path, write)


def _entry(kind: str, settings: Mapping[str, Any], model: str | None, files: list[str],
           summary: Mapping[str, Any] | None, meta: Mapping[str, Any] | None, old: MethodEntry | None) -> MethodEntry:
    now = _now()
    return MethodEntry(kind=kind, settings=dict(settings), settings_hash=settings_hash(settings, model), model=model,
                       files=files, summary=finite(dict(summary or {})), meta=finite(dict(meta or {})),
                       versions=library_versions(), created=old.created if old else now, updated=now)


_VERSIONED = ("torch", "transformers", "transformer-lens", "sentence-transformers", "numpy", "scipy", "math-verify")


def library_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {"anchors": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _new_trace_manifest(trace: Trace, mode: Mode) -> TraceManifest:
    sentences = [SentenceEntry(index=s.index, text=s.text, start=s.start, end=s.end)
                 for s in split_sentences(trace.thinking, mode=mode)]
    now = _now()
    return TraceManifest(trace=trace.model_dump(mode="json"), mode=mode, sentences=sentences, created=now, updated=now)


def _read_manifest(path: Path) -> dict[str, Any]:
    record = read_json(path)
    if not isinstance(record, dict):
        raise InputError(f"{path}: expected a JSON object (an anchors manifest)")
    version = record.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise InputError(f"{path}: schema_version {version} is newer than this anchors reads ({SCHEMA_VERSION}); upgrade anchors")
    return record


def _validate(path: Path, model: type[Any], record: dict[str, Any]) -> Any:
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{path}: field '{'.'.join(map(str, first['loc']))}': {first['msg']}") from None


def _level(folder: Path) -> str | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "trace" if folder != folder.parent else None  # damaged: reported by the reader, with its file
    return record.get("level") if isinstance(record, dict) else None


_LEGACY = ("{folder}: written by an earlier anchors (result files but no manifest.json), which this version does not "
           "read; re-run the commands with --out into a new folder (give --store OLD/rollouts.sqlite and nothing is "
           "sampled again)")


def _legacy(folder: Path) -> bool:
    return not (folder / MANIFEST).is_file() and any((folder / name).is_file() for name in LEGACY_FILES)


def _content(trace: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(trace.get(k) for k in ("problem", "prompt", "thinking", "answer_text", "gold_answer"))


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], old_model: str | None, new_model: str | None) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4]]
    if old_model != new_model:
        parts.insert(0, f"model: {old_model!r} -> {new_model!r}")
    return "; ".join(parts) or "settings differ"


def finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return finite(value.item())
    return value


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
