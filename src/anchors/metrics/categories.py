"""The paper's per-category aggregation of sentence metrics (methods.md §4, "Category figure").

Per trace: sentences in index order, cut at convergence (the first i where the accuracy of sentences
i..i+3 is all > 0.99 or all < 0.01; i and later are dropped), tagged by their first function tag, each metric
clipped at 0; mean per tag within the trace (tags with fewer than 3 sentences there give no mean); then, across
traces, the mean and standard error (sd with ddof=1 / √traces) of those trace means, skipping tags with fewer
than 3 trace means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Tags the published figure leaves out.
PUBLISHED_EXCLUDED_TAGS = ("problem_setup", "final_answer_emission", "self_checking")
CONVERGENCE_WINDOW = 4


def convergence_cut(accuracy: Sequence[float], high: float = 0.99, low: float = 0.01) -> int:
    """How many leading sentences are kept: the first i whose window of 4 accuracies is all > high or all < low
    (the model has settled on its answer from there on); all of them when no such window exists."""
    values = np.asarray(accuracy, dtype=float)
    for i in range(len(values) - CONVERGENCE_WINDOW + 1):
        window = values[i : i + CONVERGENCE_WINDOW]
        if (window > high).all() or (window < low).all():
            return i
    return len(values)


def trace_tag_means(frame: pd.DataFrame, metrics: Sequence[str], min_sentences: int = 3) -> pd.DataFrame:
    """Per (trace, tag): the mean of each metric clipped at 0, over the sentences before the convergence cut.

    `frame` needs columns trace_id, index, tag, accuracy and the metrics. Rows without a tag are skipped."""
    kept = []
    for _, trace in frame.sort_values(["trace_id", "index"]).groupby("trace_id", sort=True):
        kept.append(trace.iloc[: convergence_cut(trace["accuracy"].to_numpy())])
    if not kept:
        return pd.DataFrame(columns=["trace_id", "tag", "n_sentences", *metrics])
    rows = pd.concat(kept)
    rows = rows[rows["tag"].notna()]
    clipped = rows[list(metrics)].clip(lower=0.0)
    clipped[["trace_id", "tag"]] = rows[["trace_id", "tag"]]
    grouped = clipped.groupby(["trace_id", "tag"], sort=True)
    means = grouped[list(metrics)].mean()
    means["n_sentences"] = grouped.size()
    return means[means["n_sentences"] >= min_sentences].reset_index()


def category_table(
    frame: pd.DataFrame, metrics: Sequence[str], *, min_sentences: int = 3, min_traces: int = 3,
    exclude: Sequence[str] = PUBLISHED_EXCLUDED_TAGS,
) -> pd.DataFrame:
    """One row per (tag, metric): mean and standard error across trace means, trace and sentence counts."""
    per_trace = trace_tag_means(frame, metrics, min_sentences)
    per_trace = per_trace[~per_trace["tag"].isin(list(exclude))]
    out = []
    for (tag, metric), values in per_trace.melt(["trace_id", "tag", "n_sentences"], list(metrics), "metric").groupby(["tag", "metric"]):
        if len(values) < min_traces:
            continue
        column = values["value"].to_numpy(dtype=float)
        out.append({"tag": tag, "metric": metric, "mean": column.mean(),
                    "se": column.std(ddof=1) / np.sqrt(len(column)), "n_traces": len(column),
                    "n_sentences": int(values["n_sentences"].sum())})
    return pd.DataFrame(out, columns=["tag", "metric", "mean", "se", "n_traces", "n_sentences"])
