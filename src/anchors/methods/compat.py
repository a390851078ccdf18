"""`anchors compat check DIR`: does anchors reproduce the published method on a folder in the Thought Anchors
layout (the authors' released viewer files, or anyone's rollouts in the authors' layout)?

Checks, per trace and in total (each: how many sentences or traces were compared, how many agree):
* segmentation — paper-mode chunks of base_solution.json equal the `chunk` list of chunks_labeled.json (exact);
* delta_accuracy — `resampling_importance_accuracy[i] == accuracy[i+1] − accuracy[i]` (0 for the last; exact);
* different_trajectories_fraction, overdeterminedness — recomputed from the rollouts on disk with the same
  embedder, within 0.02 of the stored values;
* every other stored metric, when full rollouts are on disk (chunk_<i>/solutions.json): recomputed in paper
  mode, equal to 1e-9 (counterfactual metrics, which depend on the embedder, within 0.02);
* the category table (methods.md §4 aggregation) of the stored values, per model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from anchors.methods.blackbox import BlackBoxConfig
from anchors.methods.scores import METRICS, SCHEMA_VERSION, TraceScores, score_rollouts
from anchors.methods.ta_rollouts import load_ta_rollouts
from anchors.metrics.categories import category_table
from anchors.models.embeddings import Embedder
from anchors.traces.segment import split_sentences
from anchors.thought_anchors import FolderReader, ProblemFolder, Skipped

SIMILARITY_TOLERANCE = 0.02
EXACT_TOLERANCE = 1e-9
# Stored metrics that depend on the sentence embedder (compared within SIMILARITY_TOLERANCE).
SIMILARITY_BASED = ("different_trajectories_fraction", "overdeterminedness", "counterfactual_importance_accuracy",
                    "counterfactual_importance_kl")
CATEGORY_METRICS = ("resampling_importance_accuracy", "resampling_importance_kl", "counterfactual_importance_accuracy",
                    "counterfactual_importance_kl", "forced_importance_accuracy", "forced_importance_kl")


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compared: int = 0  # sentences (traces for segmentation)
    within: int = 0
    tolerance: float = 0.0
    max_deviation: float = 0.0

    @property
    def share(self) -> float:
        return self.within / self.compared if self.compared else float("nan")

    def add(self, deviation: float, tolerance: float) -> None:
        self.compared += 1
        self.tolerance = tolerance
        self.within += int(deviation <= tolerance)
        self.max_deviation = max(self.max_deviation, deviation)


class CompatReport(BaseModel):
    """compat_report.json: per check in total and per trace, and the category table."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    schema_version: int = SCHEMA_VERSION
    source: str
    embedder: str | None  # None: the similarity-based checks did not run
    traces: int
    checks: dict[str, CheckResult]
    per_trace: dict[str, dict[str, CheckResult]]
    category_table: list[dict[str, Any]]
    skipped: list[str] = []  # damaged folders (skipped) and damaged optional files (left out), one line each

    def summary(self) -> list[tuple[str, int, int, float, float]]:
        """(check, compared, within, share, max deviation) rows."""
        return [(name, c.compared, c.within, c.share, c.max_deviation) for name, c in self.checks.items()]


def compat_check(root: str | Path, embedder: Embedder | None,
                 progress: Callable[[list[Path], str], Any] | None = None,
                 on_skip: Callable[[Skipped], None] | None = None) -> CompatReport:
    """Run every check on every problem folder under `root` (see the module docstring). Without an embedder,
    only the checks that need none run (segmentation, delta_accuracy, the category table). Folders without
    chunks_labeled.json have nothing to compare and are passed over; damaged ones are skipped and listed in
    the report's `skipped` (and handed to `on_skip` as they happen)."""
    reader = FolderReader(root, on_skip=on_skip)
    totals: dict[str, CheckResult] = {}
    per_trace: dict[str, dict[str, CheckResult]] = {}
    frames = []
    folders = [f for f in reader.folders if ProblemFolder(f, reader.root).has_chunks()]
    for checks, frame in reader.each(lambda folder: _check_trace(folder, embedder),
                                     progress(folders, "checking") if progress else folders):
        per_trace[frame["trace_id"].iloc[0]] = checks
        frames.append(frame)
        for name, result in checks.items():
            total = totals.setdefault(name, CheckResult(tolerance=result.tolerance))
            total.compared += result.compared
            total.within += result.within
            total.max_deviation = max(total.max_deviation, result.max_deviation)
    table = _categories(frames)
    return CompatReport(source=str(root), embedder=embedder.identity if embedder else None, traces=len(per_trace), checks=totals,
                        per_trace=per_trace, category_table=table.to_dict(orient="records"),
                        skipped=[str(s) for s in reader.skipped + reader.damaged])


def _check_trace(folder: ProblemFolder, embedder: Embedder | None) -> tuple[dict[str, CheckResult], pd.DataFrame]:
    chunks = folder.chunks()
    stored = pd.DataFrame([{"chunk": c.chunk, "chunk_idx": c.chunk_idx, "function_tags": c.function_tags,
                            **c.metrics()} for c in chunks])
    checks = {"segmentation": CheckResult()}
    split = [s.text for s in split_sentences(folder.base_solution().solution, mode="paper")]
    checks["segmentation"].add(0.0 if split == stored["chunk"].tolist() else 1.0, 0.0)
    checks["delta_accuracy"] = _delta_accuracy(stored)
    folder.optional(lambda: folder.check_chunks_match(len(split)))  # a count mismatch is reported, not only counted
    if embedder is not None and len(split) == len(chunks):  # recomputing needs the authors' sentences
        rollouts = load_ta_rollouts(folder, mode="paper").rollouts
        scores = score_rollouts(rollouts, embedder, BlackBoxConfig(mode="paper", matrix=False))
        for metric in [m for m in METRICS if m in stored.columns and m not in scores.not_computed]:
            tolerance = SIMILARITY_TOLERANCE if metric in SIMILARITY_BASED else EXACT_TOLERANCE
            checks[metric] = _compare(scores, stored, metric, tolerance)
    frame = stored.assign(trace_id=folder.trace_id, index=stored["chunk_idx"], model=_model_of(folder),
                          tag=[(t or [None])[0] for t in stored["function_tags"]])
    return checks, frame


def _delta_accuracy(stored: pd.DataFrame) -> CheckResult:
    result = CheckResult()
    if not {"accuracy", "resampling_importance_accuracy"} <= set(stored.columns):
        return result
    accuracy, importance = stored["accuracy"].tolist(), stored["resampling_importance_accuracy"].tolist()
    for i, value in enumerate(importance):
        expected = accuracy[i + 1] - accuracy[i] if i + 1 < len(accuracy) else 0.0
        result.add(abs(value - expected), 0.0)
    return result


def _compare(scores: TraceScores, stored: pd.DataFrame, metric: str, tolerance: float) -> CheckResult:
    result = CheckResult()
    ours = {row.index: getattr(row, metric) for row in scores.rows}
    for index, theirs in zip(stored["chunk_idx"], stored[metric]):
        value = ours.get(int(index))
        if value is None or theirs is None or not math.isfinite(float(theirs)):
            continue
        result.add(abs(float(value) - float(theirs)), tolerance)
    return result


def _model_of(folder: ProblemFolder) -> str:
    parts = folder.path.relative_to(folder.root).parts
    return parts[0] if len(parts) > 2 else (folder.path.parent.name or "all")


def _categories(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    metrics = [m for m in CATEGORY_METRICS if m in frame.columns]
    tables = [category_table(group, metrics).assign(model=model) for model, group in frame.groupby("model")]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
