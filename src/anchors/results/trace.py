"""`TraceResults`: everything anchors knows about one trace — every method's per-sentence numbers side by side, the
matrices, the white-box arrays, the trace-level tests — as plain tables and arrays, no model. It is what a results
folder reads into, what the report and every figure take, and what `anchors.write_results` writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float

from anchors.results.kinds import IMPORTANCES

# Which metric a figure shows when none is asked for: the paper's headline first.
HEADLINE_ORDER = (
    "counterfactual_importance_kl", "counterfactual_importance_accuracy", "resampling_importance_kl",
    "resampling_importance_accuracy", "forced_importance_kl", "forced_importance_accuracy", "receiver_score",
    "suppression_effect", "patching_effect",
)
_INDEX_ALIASES = ("index", "sentence_index", "chunk_idx")
_NOT_METRICS = {"index", "position", "trace_id", "schema_version", "start", "end", *_INDEX_ALIASES}


@dataclass(frozen=True)
class TraceResults:
    """One trace's results. `sentences` has one row per sentence: `index`, `text`, `tag`, then one column per
    metric of every method present (NaN = undefined there; an absent column = not computed), with
    `<metric>_lo`/`_hi` interval columns where the method gives them and `n_*` counts. Matrices are [source,
    target]. `tables` holds the trace-level tests' rows (early_answering, validity, filler, mistakes, paraphrase,
    resilience); `summaries` each method's per-trace headline numbers. `notes` lists what is missing or odd, in
    words; `damaged` the files among them that are there but could not be read.
    """

    trace_id: str
    sentences: pd.DataFrame
    matrices: Mapping[str, Float[np.ndarray, "sent sent"]] = field(default_factory=dict)
    head_scores: Float[np.ndarray, "layer head"] | None = None
    vertical_scores: Float[np.ndarray, "layer head sent"] | None = None
    receiver_heads: tuple[tuple[int, int], ...] = ()
    patching: Mapping[str, Any] | None = None  # kl [site, layer, sent], sites, …
    alternatives: Mapping[int, Sequence[str]] = field(default_factory=dict)
    early_answering: pd.DataFrame | None = None  # fraction, agreement (y), accuracy, … per truncation point
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    summaries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    methods: tuple[str, ...] = ()  # the result kinds present (blackbox, receivers, …)
    info: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    damaged: tuple[str, ...] = ()

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

    def importances(self) -> dict[str, np.ndarray]:
        """Each method family's per-sentence importance present (see IMPORTANCES), for agreement."""
        return {m: self.sentences[m].to_numpy(float) for m in IMPORTANCES if m in self.sentences.columns}

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
        """One row per sentence: index, text, tag and the headline metric first, then every other column."""
        first = [c for c in ("index", "text", "tag", self.headline_metric) if c and c in self.sentences.columns]
        return self.sentences[first + [c for c in self.sentences.columns if c not in first]].copy()

    def top(self, k: int = 5, by: str | None = None) -> pd.DataFrame:
        """The k sentences with the highest `by` (default the headline metric; NaN last)."""
        by = by or self.headline_metric
        if by is None or by not in self.sentences.columns:
            raise ValueError(f"{by!r} is not a metric of {self.trace_id}; choose one of {', '.join(self.metrics)}")
        return self.to_pandas().sort_values(by, ascending=False, na_position="last", kind="stable").head(k)

    def plot(self, metric: str | None = None) -> Any:
        """The importance-per-sentence figure (plotly) of `metric` (default the headline)."""
        from anchors.report.figures import trace_figures  # figures sit above results: imported on use only

        figure = trace_figures(self, metric)["importance"]
        if isinstance(figure, str):
            raise ValueError(f"{self.trace_id}: nothing to plot ({figure})")
        return figure


def metric_columns(table: pd.DataFrame) -> list[str]:
    names = []
    for column in table.columns:
        name = str(column)
        if name in _NOT_METRICS or name.endswith(("_lo", "_hi", "_p_value", "_q_value")) or name.startswith("n_"):
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
    if "text" not in table.columns:
        alias = next((c for c in ("sentence_text", "chunk") if c in table.columns), None)
        if alias is not None:
            table = table.rename(columns={alias: "text"})
    if "tag" not in table.columns:
        tags = next((c for c in ("tags", "function_tags") if c in table.columns), None)
        table["tag"] = table[tags].map(first_tag) if tags else None
    table["index"] = pd.to_numeric(table["index"], errors="coerce")
    bad = table["index"].isna()
    if bad.any():
        notes.append(f"{where}: {int(bad.sum())} row(s) without a valid sentence index were left out")
        table = table[~bad]
    table["index"] = table["index"].astype(int)
    return table.sort_values("index", kind="stable").reset_index(drop=True)


def first_tag(value: Any) -> str | None:
    if isinstance(value, str):
        value = [t for t in value.split(";") if t.strip()]
    if isinstance(value, (list, tuple)) and value:
        return str(value[0]).strip()
    return None


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
        notes.append("no metric columns in the sentence table: nothing to rank the sentences by")
    return notes


def pooled_sentences(results: Sequence[TraceResults]) -> pd.DataFrame:
    """All traces' sentence tables stacked, with `trace_id` and `model` columns: `category_table`'s input."""
    frames = [r.sentences.assign(trace_id=r.trace_id, model=r.info.get("model") or "") for r in results]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trace_id", "model", "index", "tag"])
