"""The paper's category summary: mean ± SE of each importance metric per sentence function tag.

methods.md §4, "Category figure (paper's aggregation)". One pure function, `category_table`, used by both
`anchors figures` and `anchors compat check`, so the two print the same numbers.

Input: one row per sentence, pooled over traces, with the columns
    trace_id  any hashable: which trace the sentence belongs to (traces are the unit of the SE)
    index     int, the sentence's 0-based position in its trace
    tag       str or None, the sentence's FIRST function tag (None, "" and "unknown" are left out)
    accuracy  float, optional: used for the convergence cut (without it nothing is cut)
    <metric>  float, one column per metric in `metrics`; NaN = undefined for that sentence (left out)

Steps, per trace: sort by index; normalised position = index / (n - 1) (0.5 for a one-sentence trace),
computed on the whole trace; drop the sentences from the convergence point on (`convergence_index`); drop
untagged sentences; clip each metric at 0. Then per tag: skip it when fewer than 3 sentences carry it; per
metric, average within each trace, then mean ± SE (sd with ddof=1 / √traces) across the trace means, skipped
below 3 trace means. Tags in `exclude_tags` (the three the published figure leaves out, by default) are dropped
from the result last, so they never change the other rows.

One deliberate difference from the authors' code: a NaN metric stays NaN (left out of the means) where their
`v if v > 0 else 0` turns it into 0. Their released data holds no NaN, so the numbers on it are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PAPER_METRICS: tuple[str, ...] = (
    "resampling_importance_accuracy",
    "resampling_importance_kl",
    "counterfactual_importance_accuracy",
    "counterfactual_importance_kl",
    "forced_importance_accuracy",
    "forced_importance_kl",
)
# The published category figure leaves these three out (they are still aggregated; see `exclude_tags`).
PAPER_EXCLUDED_TAGS: tuple[str, ...] = ("problem_setup", "final_answer_emission", "self_checking")
CONVERGENCE_WINDOW = 4
MIN_SENTENCES = 3
MIN_TRACES = 3
TABLE_COLUMNS = ["tag", "metric", "mean", "se", "n_traces", "n_sentences", "position_mean", "position_se"]
_UNTAGGED = {"", "unknown"}


def convergence_index(accuracy: Sequence[float], window: int = CONVERGENCE_WINDOW) -> int | None:
    """The first i whose accuracies i .. i+window-1 are all > 0.99 or all < 0.01; None if there is none.

    As in the authors' code, i runs over 0 .. n - window - 2 only (the last two possible starts, n - window - 1
    and n - window, are never tested), and a NaN accuracy breaks a window.
    """
    acc = np.asarray(accuracy, dtype=float)
    for i in range(len(acc) - window - 1):
        block = acc[i : i + window]
        if np.all(block > 0.99) or np.all(block < 0.01):
            return i
    return None


def paper_sentences(sentences: pd.DataFrame, metrics: Sequence[str] = PAPER_METRICS) -> pd.DataFrame:
    """The per-sentence rows the aggregation averages: cut, tagged, clipped, with `position` added."""
    _check_columns(sentences, metrics)
    kept = [_prepare_trace(group, metrics) for _, group in sentences.groupby("trace_id", sort=True)]
    if not kept:
        return pd.DataFrame(columns=["trace_id", "index", "tag", "position", *metrics])
    return pd.concat(kept, ignore_index=True)


def _check_columns(sentences: pd.DataFrame, metrics: Sequence[str]) -> None:
    missing = [c for c in ("trace_id", "index", "tag", *metrics) if c not in sentences.columns]
    if missing:
        raise ValueError(f"category_table: the sentence table lacks column(s) {missing}; "
                         f"it has {list(sentences.columns)}")


def _prepare_trace(trace: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    trace = trace.sort_values("index", kind="stable")
    n = len(trace)
    position = trace["index"].astype(float) / (n - 1) if n > 1 else pd.Series(0.5, index=trace.index)
    trace = trace.assign(position=position)
    if "accuracy" in trace.columns:
        cut = convergence_index(trace["accuracy"].to_numpy(dtype=float))
        if cut is not None:
            trace = trace.iloc[:cut]
    tags = trace["tag"].map(lambda t: None if t is None or (isinstance(t, float) and np.isnan(t)) else str(t))
    trace = trace.assign(tag=tags)[tags.notna() & ~tags.fillna("").str.lower().isin(_UNTAGGED)]
    clipped = {m: trace[m].astype(float).clip(lower=0.0) for m in metrics}  # NaN stays NaN
    return trace.assign(**clipped)[["trace_id", "index", "tag", "position", *metrics]]


def category_table(
    sentences: pd.DataFrame,
    metrics: Sequence[str] = PAPER_METRICS,
    *,
    exclude_tags: Sequence[str] = PAPER_EXCLUDED_TAGS,
    min_sentences: int = MIN_SENTENCES,
    min_traces: int = MIN_TRACES,
) -> pd.DataFrame:
    """Mean ± SE of each metric per tag, the paper's way (see the module docstring for every step).

    Returns one row per (tag, metric) with the columns of `TABLE_COLUMNS`: `mean`, `se` over trace means,
    `n_traces` (trace means behind them), `n_sentences` (sentences of that tag after the cut), and
    `position_mean` ± `position_se` (normalised position, aggregated the same way). Rows are ordered by
    metric (as given), then tag.
    """
    rows = paper_sentences(sentences, metrics)
    out = [row for tag, group in rows.groupby("tag", sort=True) if len(group) >= min_sentences
           for row in _tag_rows(str(tag), group, metrics, min_traces)]
    table = pd.DataFrame(out, columns=TABLE_COLUMNS)
    table = table[~table["tag"].isin(set(exclude_tags))]
    order = {m: i for i, m in enumerate(metrics)}
    table = table.sort_values(["metric", "tag"], key=lambda c: c.map(order) if c.name == "metric" else c)
    return table.reset_index(drop=True)


def _tag_rows(tag: str, group: pd.DataFrame, metrics: Sequence[str], min_traces: int) -> list[dict[str, object]]:
    position_mean, position_se, _ = mean_se(group.groupby("trace_id")["position"].mean())
    rows = []
    for metric in metrics:
        per_trace = group.dropna(subset=[metric]).groupby("trace_id")[metric].mean()
        if len(per_trace) < min_traces:
            continue
        mean, se, n = mean_se(per_trace)
        rows.append({"tag": tag, "metric": metric, "mean": mean, "se": se, "n_traces": n,
                     "n_sentences": len(group), "position_mean": position_mean, "position_se": position_se})
    return rows


def mean_se(values: pd.Series | np.ndarray) -> tuple[float, float, int]:
    """Mean, standard error (sd with ddof=1 over √n; 0 for a single value) and count of finite values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan"), 0
    se = float(np.std(arr, ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else 0.0
    return float(arr.mean()), se, int(arr.size)
