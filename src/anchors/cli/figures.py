"""Figure and report commands: `anchors figures`, `anchors report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anchors import console
from anchors.cli import app, checks_outputs, handles_errors
from anchors.errors import AnchorsError

ResultsArg = Annotated[Path | None, typer.Argument(help="Results folder: RESULTS_DIR/<trace id>/ (scores.csv, matrix.npz, …).")]
FromTAOption = Annotated[Path | None, typer.Option("--from-ta", help="Use the authors' released data (Thought Anchors layout) instead of a results folder.")]
MetricOption = Annotated[str | None, typer.Option("--metric", help="Metric to rank, size and plot sentences by (default: counterfactual_importance_kl when present).")]


def _load(results_dir: Path | None, from_ta: Path | None, *, alternatives: int) -> list:
    if (results_dir is None) == (from_ta is None):
        raise AnchorsError("give either a RESULTS_DIR or --from-ta DIR (exactly one)")
    if from_ta is not None:
        from anchors.report.ta import load_ta_results

        return load_ta_results(from_ta, alternatives=alternatives)
    from anchors.report.results import read_results

    return read_results(results_dir)  # type: ignore[arg-type]


@app.command()
@handles_errors
@checks_outputs(out="dir")
def figures(
    results_dir: ResultsArg = None,
    from_ta: FromTAOption = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (stable file names; existing files are replaced).")] = Path("figures"),
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: html, png, svg (pdf, jpg, webp also work).")] = "html,png,svg",
    per_trace: Annotated[str | None, typer.Option("--per-trace", help="Comma-separated per-trace figures, 'all' or 'none' (default: all; 'graph' with --from-ta).")] = None,
    metric: MetricOption = None,
) -> None:
    """Regenerate every figure from stored results alone (or the paper's black-box figures from the authors' data)
    and print the category table (methods.md §4) the category figures plot."""
    from anchors.report.batch import write_all_figures
    from anchors.report.figures import TRACE_FIGURES

    results = _load(results_dir, from_ta, alternatives=0)
    chosen = per_trace or ("graph" if from_ta is not None else "all")
    names = TRACE_FIGURES if chosen == "all" else () if chosen == "none" else tuple(n.strip() for n in chosen.split(",") if n.strip())
    try:
        written = write_all_figures(results, out, formats=formats.split(","), metric=metric, per_trace=names,
                                    progress=console.track)
    except ValueError as exc:
        raise AnchorsError(str(exc)) from None
    for group, table in written.tables.items():
        _print_category_table(group, table, len([r for r in results if _group(r) == group]))
    for stem, reason in written.skipped:
        console.warn(f"{stem}: not drawn: {reason}")
    console.stdout.print(f"wrote {len(written.files)} file(s) for {len(results)} trace(s) under {out}")


def _group(result: object) -> str:
    from anchors.report.batch import group_name

    return group_name(result)  # type: ignore[arg-type]


def _print_category_table(group: str, table: object, n_traces: int) -> None:
    """One small table per metric (tag, mean, SE, counts, position): readable at 80 columns, greppable."""
    import pandas as pd

    assert isinstance(table, pd.DataFrame)
    head = f"{group}, {n_traces} trace(s): mean ± SE over trace means (methods.md §4)"
    if table.empty:
        console.stdout.print(f"Category table, {head}: no tag has ≥ 3 sentences in ≥ 3 traces")
        return
    for metric, rows in table.groupby("metric", sort=False):
        cells = [(r.tag, f"{r.mean:.4f}", f"{r.se:.4f}", r.n_traces, r.n_sentences, f"{r.position_mean:.3f}")
                 for r in rows.itertuples()]
        console.table(f"Category table: {metric}, {head}", ["tag", "mean", "se", "traces", "sentences", "position"], cells)


@app.command()
@handles_errors
@checks_outputs(out="dir")
def report(
    results_dir: ResultsArg = None,
    from_ta: FromTAOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write OUT/<trace id>.html (default: report.html inside each trace's result folder; 'reports/' with --from-ta).")] = None,
    alternatives: Annotated[int, typer.Option("--alternatives", min=0, help="Resampled alternatives shown per sentence.")] = 5,
    metric: MetricOption = None,
) -> None:
    """Write one self-contained, offline HTML report per trace: sentences with every metric and its interval,
    resampled alternatives, the sentence graph and the matrices."""
    from anchors.report.batch import write_reports

    results = _load(results_dir, from_ta, alternatives=alternatives)
    target = out if out is not None else (Path("reports") if from_ta is not None else None)
    written = write_reports(results, target, metric=metric, alternatives=alternatives, progress=console.track)
    for result, path in zip(results, written):
        extra = f" ({len(result.notes)} note(s))" if result.notes else ""
        console.stdout.print(f"{result.trace_id}: {path} ({path.stat().st_size / 2**20:.1f} MiB){extra}")
