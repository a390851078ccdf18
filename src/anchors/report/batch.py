"""Regenerating every figure and report of a set of traces from stored results alone (what the CLI runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from anchors.metrics.categories import PAPER_METRICS
from anchors.report.figures import TRACE_FIGURES, pooled_figures, trace_figures
from anchors.report.html import write_report
from anchors.results.contract import report_path
from anchors.results.trace import TraceResults
from anchors.viz.export import FORMATS, check_formats, write_figures

Progress = Callable[[Sequence[TraceResults], str], Iterable[TraceResults]]


@dataclass(frozen=True)
class FigureSet:
    """What `write_all_figures` wrote: files, the category table of each group, and what was skipped."""

    files: tuple[Path, ...]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: tuple[tuple[str, str], ...] = ()  # (figure path stem, reason)

    def to_pandas(self) -> pd.DataFrame:
        """All groups' category tables stacked, with a `group` column."""
        frames = [t.assign(group=g) for g, t in self.tables.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def group_name(result: TraceResults) -> str:
    """Traces are pooled per model (the paper's figures are per model); 'all-traces' when none is recorded."""
    model = result.info.get("model") or (result.info.get("run") or {}).get("model")
    return str(model).replace("/", "--") if model else "all-traces"


def write_all_figures(
    results: Sequence[TraceResults],
    out: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    metric: str | None = None,
    per_trace: Sequence[str] = TRACE_FIGURES,
    metrics: Sequence[str] = PAPER_METRICS,
    progress: Progress | None = None,
) -> FigureSet:
    """Every figure, with stable names:

    - `OUT/<group>/categories_<metric>.<fmt>`, `OUT/<group>/importance_by_position.<fmt>` and the plotted
      `OUT/<group>/category_table.csv`, per model group;
    - `OUT/traces/<trace id>/<figure>.<fmt>` for each name in `per_trace` (see TRACE_FIGURES) the trace has data for.
    """
    out, formats = Path(out), check_formats(formats)
    unknown = sorted(set(per_trace) - set(TRACE_FIGURES))
    if unknown:
        raise ValueError(f"unknown per-trace figure(s) {unknown}; choose from {', '.join(TRACE_FIGURES)}")
    figures, skipped, tables = {}, [], {}
    groups: dict[str, list[TraceResults]] = {}
    for result in results:
        groups.setdefault(group_name(result), []).append(result)
    for group, members in sorted(groups.items()):
        built, tables[group] = pooled_figures(members, metrics)
        _collect(built, out / group, figures, skipped)
        if not tables[group].empty:
            (out / group).mkdir(parents=True, exist_ok=True)
            tables[group].to_csv(out / group / "category_table.csv", index=False)
    for result in (progress(results, "building figures") if progress else results):
        built = {k: v for k, v in trace_figures(result, metric).items() if k in per_trace}
        _collect(built, out / "traces" / result.trace_id, figures, skipped)
    files = write_figures(figures, formats, root=out, progress=progress)
    return FigureSet(files=tuple(files), tables=tables, skipped=tuple(skipped))


def _collect(built: dict, folder: Path, figures: dict, skipped: list) -> None:
    for name, figure in built.items():
        if isinstance(figure, str):
            skipped.append((str(folder / name), figure))
        else:
            figures[folder / name] = figure


def write_reports(
    results: Sequence[TraceResults],
    out: str | Path | None = None,
    *,
    metric: str | None = None,
    alternatives: int = 5,
    progress: Progress | None = None,
) -> list[Path]:
    """One self-contained report per trace: `OUT/<trace id>.html`, or the report inside each trace's result
    folder when `out` is None."""
    written = []
    for result in (progress(results, "writing reports") if progress else results):
        if out is None and not result.info.get("results_dir"):
            raise ValueError(f"{result.trace_id}: no result folder to write its report into; give an output folder")
        path = Path(out) / f"{result.trace_id}.html" if out is not None else report_path(result.info["results_dir"])
        written.append(write_report(result, path, metric=metric, alternatives=alternatives))
    return written
