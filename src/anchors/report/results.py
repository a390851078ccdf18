"""A trace's results as plain tables and arrays, and the reader for a per-trace result folder.

Layout of a result folder (RESULTS_DIR/<trace id>/; every file optional, each missing one becomes a visible
note in the report instead of an error):

| file | content |
|---|---|
| scores.csv (or scores.jsonl) | one row per sentence: `index` (0-based int), `text`, `tag` (first function tag) or `tags` (list in JSONL, `;`-joined in CSV), one float column per metric, optional CI columns `<metric>_lo` / `<metric>_hi`; NaN = computed but undefined, a missing column = not computed; integer columns named `n_*` are counts, not metrics |
| sentences.jsonl | `{"index", "text", ...}` per line: sentence texts when the scores table has none |
| tags.jsonl | `{"index", "tags": [...], "depends_on": [...]}` per line: function tags when the scores table has none |
| matrix.npz | key `matrix`: float [sent, sent], the resampling sentence→sentence matrix, row = source i, column = target j (NaN where j ≤ i) |
| suppression.npz | key `matrix`: float [sent, sent], the attention-suppression matrix, row = suppressed source s, column = target j |
| receivers.npz | `kurtosis`: float [layer, head]; optional `vertical_scores`: float [layer, head, sent]; optional `receiver_heads`: int [k, 2] of (layer, head) |
| early_answering.csv | `fraction`, `agreement`, optional `agreement_lo`, `agreement_hi`, `group` |
| alternatives.json | `{"<index>": ["resampled first sentence", ...]}` |
| trace.json | the trace record (problem, answer_text, gold_answer, model, …) |
| run.json | provenance, shown as given (any JSON object) |
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float

from anchors.errors import InputError

RESULT_FILES = ("scores.csv", "scores.jsonl", "sentences.jsonl", "tags.jsonl", "matrix.npz", "suppression.npz",
                "receivers.npz", "early_answering.csv", "alternatives.json", "trace.json", "run.json")
# Which metric a figure shows when none is asked for: the paper's headline first.
HEADLINE_ORDER = (
    "counterfactual_importance_kl", "counterfactual_importance_accuracy", "resampling_importance_kl",
    "resampling_importance_accuracy", "forced_importance_kl", "forced_importance_accuracy", "receiver_score",
)
MATRIX_FILES = {"resampling": "matrix.npz", "suppression": "suppression.npz"}
_INDEX_ALIASES = ("index", "sentence_index", "chunk_idx")
_TEXT_ALIASES = ("text", "sentence_text", "chunk")
_NOT_METRICS = {"index", "position", "trace_id", *_INDEX_ALIASES}


class _Notes(list):
    """Notes for the report; `damage` also records a file that is there but cannot be used."""

    def __init__(self) -> None:
        super().__init__()
        self.damaged: list[str] = []

    def damage(self, message: str) -> None:
        self.append(message)
        self.damaged.append(message)


@dataclass(frozen=True)
class TraceResults:
    """Everything the figures and the report show about one trace: tables, arrays and texts, no model.

    `sentences` has one row per sentence with `index`, `text`, `tag` and the metric columns (see the module
    docstring); matrices are indexed [source, target]. `notes` lists what is missing or odd, in words;
    `damaged` the files among them that are there but could not be read (the CLI warns and exits 1).
    """

    trace_id: str
    sentences: pd.DataFrame
    matrices: Mapping[str, Float[np.ndarray, "sent sent"]] = field(default_factory=dict)
    head_scores: Float[np.ndarray, "layer head"] | None = None
    vertical_scores: Float[np.ndarray, "layer head sent"] | None = None
    receiver_heads: tuple[tuple[int, int], ...] = ()
    alternatives: Mapping[int, Sequence[str]] = field(default_factory=dict)
    early_answering: pd.DataFrame | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    damaged: tuple[str, ...] = ()  # files present but unreadable ("<path>: what is wrong"), also among the notes

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)

    @property
    def metrics(self) -> list[str]:
        """Metric columns of the sentence table (numeric, not an index, CI bound or `n_*` count)."""
        return metric_columns(self.sentences)

    @property
    def headline_metric(self) -> str | None:
        metrics = self.metrics
        return next((m for m in HEADLINE_ORDER if m in metrics), metrics[0] if metrics else None)

    def interval(self, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper) bounds of `metric` when the table has `<metric>_lo` and `<metric>_hi`."""
        lo, hi = f"{metric}_lo", f"{metric}_hi"
        if lo in self.sentences.columns and hi in self.sentences.columns:
            return self.sentences[lo].to_numpy(dtype=float), self.sentences[hi].to_numpy(dtype=float)
        return None

    def texts(self) -> list[str]:
        return [str(t) for t in self.sentences["text"]]

    def tags(self) -> list[str | None]:
        return [None if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in self.sentences["tag"]]

    def to_pandas(self) -> pd.DataFrame:
        return self.sentences.copy()


def metric_columns(table: pd.DataFrame) -> list[str]:
    names = []
    for column in table.columns:
        name = str(column)
        if name in _NOT_METRICS or name.endswith(("_lo", "_hi")) or name.startswith("n_"):
            continue
        if pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column]):
            names.append(name)
    return names


def normalise_sentence_table(table: pd.DataFrame, notes: list[str], where: str) -> pd.DataFrame:
    """Canonical columns `index`, `text`, `tag` (aliases accepted), sorted by index."""
    table = table.copy()
    index_col = next((c for c in _INDEX_ALIASES if c in table.columns), None)
    if index_col is None:
        notes.append(f"{where}: no `index` column; sentences are numbered in file order")
        table["index"] = np.arange(len(table))
    elif index_col != "index":
        table = table.rename(columns={index_col: "index"})
    text_col = next((c for c in _TEXT_ALIASES if c in table.columns), None)
    if text_col is not None and text_col != "text":
        table = table.rename(columns={text_col: "text"})
    if "tag" not in table.columns:
        table["tag"] = table[_tags_column(table)].map(_first_tag) if _tags_column(table) else None
    table["index"] = pd.to_numeric(table["index"], errors="coerce")
    bad = table["index"].isna()
    if bad.any():
        notes.append(f"{where}: {int(bad.sum())} row(s) without a valid sentence index were left out")
        table = table[~bad]
    table["index"] = table["index"].astype(int)
    return table.sort_values("index", kind="stable").reset_index(drop=True)


def _tags_column(table: pd.DataFrame) -> str | None:
    return next((c for c in ("tags", "function_tags") if c in table.columns), None)


def _first_tag(value: Any) -> str | None:
    if isinstance(value, str):
        value = [t for t in value.split(";") if t.strip()]
    if isinstance(value, (list, tuple)) and value:
        return str(value[0]).strip()
    return None


def find_trace_dirs(results_dir: str | Path) -> list[Path]:
    """Trace result folders: `results_dir` itself if it holds result files, else its sub-folders that do."""
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected RESULTS_DIR/<trace id>/ folders of result files)")
    if _has_results(root):
        return [root]
    found = sorted(d for d in root.iterdir() if d.is_dir() and _has_results(d))
    if not found:
        raise InputError(f"{root}: no trace result folders found (none holds any of {', '.join(RESULT_FILES)})")
    return found


def _has_results(folder: Path) -> bool:
    return any((folder / name).is_file() for name in RESULT_FILES)


def read_results(results_dir: str | Path) -> list[TraceResults]:
    """Every trace under a results folder (see `find_trace_dirs`)."""
    return [read_trace_results(d) for d in find_trace_dirs(results_dir)]


def read_trace_results(folder: str | Path) -> TraceResults:
    """One trace's result folder → TraceResults. Missing or unreadable files become notes, never errors."""
    folder = Path(folder)
    notes = _Notes()
    info = {"results_dir": str(folder), **_read_info(folder, notes)}
    sentences = _read_sentences(folder, notes)
    head_scores, vertical, heads = _read_receivers(folder, len(sentences), notes)
    return TraceResults(
        trace_id=str(info.get("id") or folder.name),
        sentences=sentences,
        matrices=_read_matrices(folder, len(sentences), notes),
        head_scores=head_scores,
        vertical_scores=vertical,
        receiver_heads=heads,
        alternatives=_read_alternatives(folder / "alternatives.json", notes),
        early_answering=_read_early_answering(folder / "early_answering.csv", notes),
        info=info,
        notes=tuple(notes) + tuple(data_notes(sentences)),
        damaged=tuple(notes.damaged),
    )


def _read_info(folder: Path, notes: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for name in ("trace.json", "run.json"):
        record = _read_json(folder / name, notes, required=False)
        if isinstance(record, dict):
            info.update(record if name == "trace.json" else {"run": record})
    return info


def _read_json(path: Path, notes: list[str], *, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            notes.append(f"{path.name} not found in {path.parent}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _damage(notes, f"{path}: cannot read ({exc})")
        return None


def _damage(notes: list[str], message: str) -> None:
    """A file that is there but unusable: a note, and a damaged file when the caller collects them."""
    if isinstance(notes, _Notes):
        notes.damage(message)
    else:
        notes.append(message)


def _read_sentences(folder: Path, notes: list[str]) -> pd.DataFrame:
    table = _read_scores(folder, notes)
    if table is None:
        table = _read_jsonl_table(folder / "sentences.jsonl", notes)
    if table is None:
        notes.append(f"no sentences: neither scores.csv, scores.jsonl nor sentences.jsonl could be read in {folder}")
        return pd.DataFrame({"index": pd.Series(dtype=int), "text": pd.Series(dtype=str), "tag": pd.Series(dtype=object)})
    table = normalise_sentence_table(table, notes, str(folder))
    table = _merge_side_table(table, folder / "sentences.jsonl", "text", notes)
    table = _merge_tags(table, folder / "tags.jsonl", notes)
    if "text" not in table.columns or table["text"].isna().all():
        notes.append("sentence texts not found (no `text` column, no sentences.jsonl): sentences are shown by number")
        table["text"] = [f"sentence {i}" for i in table["index"]]
    table["text"] = table["text"].fillna("").astype(str)
    return table


def _read_scores(folder: Path, notes: list[str]) -> pd.DataFrame | None:
    csv, jsonl = folder / "scores.csv", folder / "scores.jsonl"
    if csv.is_file():
        try:
            return pd.read_csv(csv, keep_default_na=True)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            _damage(notes, f"{csv}: cannot read ({exc})")
    if jsonl.is_file():
        return _read_jsonl_table(jsonl, notes)
    notes.append(f"no scores table (scores.csv / scores.jsonl) in {folder}: no importance figures")
    return None


def _read_jsonl_table(path: Path, notes: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    rows, bad = [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _damage(notes, f"{path}: cannot read ({exc})")
        return None
    for line in lines:
        if line.strip():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                bad += 1
                continue
            if isinstance(record, dict):
                rows.append(record)
    if bad:
        _damage(notes, f"{path}: {bad} line(s) are not valid JSON (truncated or damaged) and were left out")
    return pd.json_normalize(rows, sep="_") if rows else None


def _merge_side_table(table: pd.DataFrame, path: Path, column: str, notes: list[str]) -> pd.DataFrame:
    if column in table.columns and table[column].notna().any():
        return table
    side = _read_jsonl_table(path, notes)
    if side is None:
        return table
    side = normalise_sentence_table(side, notes, str(path))
    if column not in side.columns:
        return table
    return table.drop(columns=[column], errors="ignore").merge(side[["index", column]], on="index", how="left")


def _merge_tags(table: pd.DataFrame, path: Path, notes: list[str]) -> pd.DataFrame:
    side = _read_jsonl_table(path, notes)
    if side is None or table["tag"].notna().any():
        return table
    side = normalise_sentence_table(side, notes, str(path))
    extra = [c for c in ("depends_on",) if c in side.columns and c not in table.columns]
    return table.drop(columns=["tag"]).merge(side[["index", "tag", *extra]], on="index", how="left")


def _load_npz(path: Path, notes: list[str]) -> Mapping[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:  # never unpickle a results file
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        _damage(notes, f"{path}: cannot read ({exc})")
        return None


def _read_matrices(folder: Path, n: int, notes: list[str]) -> dict[str, np.ndarray]:
    matrices = {}
    for name, filename in MATRIX_FILES.items():
        if not (folder / filename).is_file():
            notes.append(f"no {name} matrix ({filename} not found)")
            continue
        data = _load_npz(folder / filename, notes)
        if data is None:
            continue
        matrix = data.get("matrix")
        if matrix is None or matrix.ndim != 2 or matrix.shape != (n, n):
            shape = None if matrix is None else matrix.shape
            _damage(notes, f"{folder / filename}: key 'matrix' must be a [{n}, {n}] array (one row and column per "
                           f"sentence), found {shape}")
            continue
        matrices[name] = matrix.astype(float)
    return matrices


def _read_receivers(folder: Path, n: int, notes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None, tuple]:
    path = folder / "receivers.npz"
    if not path.is_file():
        notes.append("no receiver-head results (receivers.npz not found)")
        return None, None, ()
    data = _load_npz(path, notes)
    if data is None:
        return None, None, ()
    kurtosis = data.get("kurtosis")
    if kurtosis is None or kurtosis.ndim != 2:
        _damage(notes, f"{path}: key 'kurtosis' must be a [layer, head] array")
        return None, None, ()
    vertical = data.get("vertical_scores")
    if vertical is not None and vertical.shape != (*kurtosis.shape, n):
        _damage(notes, f"{path}: 'vertical_scores' must be [layer, head, {n}], found {vertical.shape}")
        vertical = None
    heads = data.get("receiver_heads")
    pairs = tuple((int(layer), int(head)) for layer, head in heads.reshape(-1, 2)) if heads is not None else ()
    return kurtosis.astype(float), None if vertical is None else vertical.astype(float), pairs


def _read_alternatives(path: Path, notes: list[str]) -> dict[int, list[str]]:
    if not path.is_file():
        notes.append("no resampled alternatives to show (alternatives.json not found)")
        return {}
    record = _read_json(path, notes, required=False)
    if record is None:
        return {}
    if not isinstance(record, dict):
        _damage(notes, f"{path}: expected an object {{\"<index>\": [texts]}}")
        return {}
    out = {}
    for key, texts in record.items():
        if str(key).lstrip("-").isdigit() and isinstance(texts, list):
            out[int(key)] = [str(t) for t in texts]
    return out


def _read_early_answering(path: Path, notes: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _damage(notes, f"{path}: cannot read ({exc})")
        return None
    if not {"fraction", "agreement"} <= set(table.columns):
        _damage(notes, f"{path}: needs columns 'fraction' and 'agreement'")
        return None
    return table


def data_notes(sentences: pd.DataFrame) -> list[str]:
    """Plain-words warnings about the numbers themselves: NaN metrics, a single sentence, no metrics."""
    notes = []
    if len(sentences) == 1:
        notes.append("the trace has a single sentence: importance needs at least two to compare")
    for metric in metric_columns(sentences):
        missing = int(sentences[metric].isna().sum())
        if missing:
            notes.append(f"{metric}: NaN for {missing} of {len(sentences)} sentence(s) (undefined there; drawn as gaps)")
    if len(sentences) and not metric_columns(sentences):
        notes.append("no metric columns in the scores table: nothing to rank the sentences by")
    return notes


def pooled_sentences(results: Sequence[TraceResults]) -> pd.DataFrame:
    """All traces' sentence tables stacked, with `trace_id` and `model` columns: `category_table`'s input."""
    frames = [r.sentences.assign(trace_id=r.trace_id, model=r.info.get("model") or "") for r in results]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trace_id", "model", "index", "tag"])

