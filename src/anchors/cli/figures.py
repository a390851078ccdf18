"""Figure and report commands: `anchors figures`, `anchors report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anchors import console
from anchors.cli import app, checks_outputs, finish_folders, handles_errors, ta_reader
from anchors.cli import options as opt
from anchors.errors import AnchorsError

ResultsArg = Annotated[Path | None, typer.Argument(help="Results folder: RESULTS_DIR/<trace id>/ (scores.csv, matrix.npz, …).")]
FromTAOption = Annotated[Path | None, typer.Option("--from-ta", help="Use the authors' released data (Thought Anchors layout) instead of a results folder.")]
MetricOption = Annotated[str | None, typer.Option("--metric", help="Metric to rank, size and plot sentences by (default: counterfactual_importance_kl when present).")]


class _Loaded:
    """The traces of a results folder or a Thought Anchors folder, with what could not be read reported as it is met."""

    def __init__(self, results_dir: Path | None, from_ta: Path | None, *, alternatives: int) -> None:
        if (results_dir is None) == (from_ta is None):
            raise AnchorsError("give either a RESULTS_DIR or --from-ta DIR (exactly one)")
        self.folders = None
        if from_ta is not None:
            from anchors.report.ta import load_ta_results

            self.folders = ta_reader(from_ta)
            self.results = load_ta_results(from_ta, alternatives=alternatives, reader=self.folders)
            if not self.results:
                raise AnchorsError(f"{from_ta}: no trace could be read ({self.folders.summary('read')})")
        else:
            from anchors.results import read_results

            self.skipped: list[str] = []
            self.results = read_results(results_dir, on_skip=self._skip)  # type: ignore[arg-type]
            for result in self.results:
                for damage in result.damaged:
                    console.warn(f"{result.trace_id}: {damage}; left out")

    def _skip(self, message: str) -> None:
        console.warn(message)
        self.skipped.append(message)

    def finish(self, verb: str, skip_invalid: bool) -> None:
        if self.folders is not None:
            finish_folders(self.folders, verb, skip_invalid)
            return
        damaged = [r.trace_id for r in self.results if r.damaged] + self.skipped
        if damaged:
            console.warn(f"{len(self.results)} trace(s) {verb}; {len(damaged)} with damaged result files left out: "
                         f"{', '.join(damaged)}" + ("" if skip_invalid else " (exit 1; --skip-invalid to exit 0)"))
            if not skip_invalid:
                raise typer.Exit(1)


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
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Regenerate every figure from stored results alone (or the paper's black-box figures from the authors' data)
    and print the category table the category figures plot (the paper's aggregation, docs/methods.md)."""
    from anchors.report.batch import write_all_figures
    from anchors.report.figures import TRACE_FIGURES

    loaded = _Loaded(results_dir, from_ta, alternatives=0)
    results = loaded.results
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
    loaded.finish("drawn", skip_invalid)


def _group(result: object) -> str:
    from anchors.report.batch import group_name

    return group_name(result)  # type: ignore[arg-type]


def _print_category_table(group: str, table: object, n_traces: int) -> None:
    """One small table per metric (tag, mean, SE, counts, position): readable at 80 columns, greppable."""
    import pandas as pd

    assert isinstance(table, pd.DataFrame)
    head = f"{group}, {n_traces} trace(s): mean ± SE over trace means"
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
    out: Annotated[Path | None, typer.Option("--out", help="Write OUT/<trace id>.html (default: each trace's report in its result folder; 'reports/' with --from-ta).")] = None,
    alternatives: Annotated[int, typer.Option("--alternatives", min=0, help="Resampled alternatives shown per sentence.")] = 5,
    metric: MetricOption = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Write one self-contained, offline HTML report per trace: sentences with every metric and its interval,
    resampled alternatives, the sentence graph and the matrices."""
    from anchors.report.batch import write_reports

    loaded = _Loaded(results_dir, from_ta, alternatives=alternatives)
    results = loaded.results
    target = out if out is not None else (Path("reports") if from_ta is not None else None)
    written = write_reports(results, target, metric=metric, alternatives=alternatives, progress=console.track)
    for result, path in zip(results, written):
        extra = f" ({len(result.notes)} note(s))" if result.notes else ""
        console.stdout.print(f"{result.trace_id}: {path} ({path.stat().st_size / 2**20:.1f} MiB){extra}")
    loaded.finish("reported", skip_invalid)
