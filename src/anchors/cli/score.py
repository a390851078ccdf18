"""Black-box thought anchors: `anchors score` and `anchors compat check`."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import (
    FromTA,
    Inputs,
    ModeOption,
    SkipInvalid,
    app,
    check_mode,
    handles_errors,
)
from anchors.cli.backends import (
    ApiKeyEnvOption,
    BackendOption,
    BaseUrlOption,
    BatchSizeOption,
    DeviceOption,
    DtypeOption,
    ModelOption,
    ServerKindOption,
    TemplateOption,
    build_sampler,
)

compat_app = typer.Typer(help="Check anchors against the published method on data in the authors' layout.",
                         no_args_is_help=True, rich_markup_mode=None)
app.add_typer(compat_app, name="compat")

Embedder = Annotated[str, typer.Option("--embedder", help="Sentence embedder: all-MiniLM-L6-v2 (bundled) or a sentence-transformers folder.")]


def _profiling(command: Any) -> Any:
    """With --profile, run the command under cProfile (see `_profiled`)."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _profiled(Path(kwargs["out"]) / "profile.pstats" if kwargs.get("profile") else None):
            return command(*args, **kwargs)
    return run


@app.command()
@handles_errors
@_profiling
def score(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    from_ta: FromTA = None,
    model: ModelOption = "smollm2-135m",
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="Rollouts per prefix (and as many forced answers); with --adaptive, the first round.")] = 8,
    mode: ModeOption = "default",
    out: Annotated[Path, typer.Option("--out", help="Results folder: one sub-folder per trace.")] = Path("results/scores"),
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Token budget of each resampled continuation.")] = 96,
    forced: Annotated[bool, typer.Option("--forced/--no-forced", help="Also sample forced answers (forced-answer importance).")] = True,
    matrix: Annotated[bool, typer.Option("--matrix/--no-matrix", help="Also compute the sentence→sentence matrix.")] = True,
    bootstrap: Annotated[int | None, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the intervals (default: 1000; 0 in paper mode).")] = None,
    fdr: Annotated[float, typer.Option("--fdr", help="Benjamini–Hochberg level of the anchor flag.")] = 0.05,
    threshold: Annotated[float, typer.Option("--threshold", help="Cosine below which a resampled sentence counts as different.")] = 0.8,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    adaptive: Annotated[bool, typer.Option("--adaptive", help="Start with --rollouts per prefix, then add half as many per round until each sentence's counterfactual-KL interval is narrower than --target-width or separated from the top 3.")] = False,
    target_width: Annotated[float, typer.Option("--target-width", help="Adaptive: interval width (nats) at which a sentence is done.")] = 1.5,
    max_rollouts: Annotated[int, typer.Option("--max-rollouts", min=1, help="Adaptive: most rollouts per prefix.")] = 50,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N traces.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the printed table of top anchors.")] = 5,
    embedder: Embedder = "all-MiniLM-L6-v2",
    tags: Annotated[str, typer.Option("--tags", help="Function tags for each sentence: auto (an LLM endpoint when $ANCHORS_LABEL_BASE_URL is set, else the offline tagger), offline, llm, or none.")] = "auto",
    backend: BackendOption = "hf",
    base_url: BaseUrlOption = None,
    server_kind: ServerKindOption = "vllm",
    api_key_env: ApiKeyEnvOption = "OPENAI_API_KEY",
    template: TemplateOption = None,
    batch_size: BatchSizeOption = 32,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    skip_invalid: SkipInvalid = False,
    profile: Annotated[bool, typer.Option("--profile", help="Print each trace's time per phase (sampling, grading, embedding, metrics, report; also in run.json) and write a cProfile of the run to OUT/profile.pstats (python -m pstats, snakeviz).")] = False,
) -> None:
    """Which sentences of each trace cause its answer: resample from every sentence, grade, and score."""
    from anchors.methods.blackbox import BlackBoxConfig
    from anchors.models.embeddings import SentenceEmbedder

    if tags not in ("auto", "offline", "llm", "none"):
        raise typer.BadParameter(f"--tags must be auto, offline, llm or none, not {tags!r}")
    config = BlackBoxConfig(mode=check_mode(mode), rollouts=rollouts, max_new_tokens=max_new_tokens, forced=forced,  # type: ignore[arg-type]
                            matrix=matrix, bootstrap=bootstrap, fdr=fdr, similarity_threshold=threshold, seed=seed)
    embed = SentenceEmbedder(embedder)
    if from_ta is not None:
        if traces is not None:
            raise typer.BadParameter("give either a TRACES.jsonl file or --from-ta DIR, not both")
        _score_from_ta(from_ta, config, embed, out, top, limit, profile)
        return
    inputs = Inputs(traces, None)
    sampler, prompt_template, _ = build_sampler(model, backend, base_url, server_kind, api_key_env, batch_size,
                                                device, dtype, template)
    if prompt_template is None:  # a server and no --template: the R1-distill format fits most reasoning models
        from anchors.models.templates import r1_distill_template

        prompt_template = r1_distill_template()
    adaptive_plan = _adaptive_plan(rollouts, max_rollouts, target_width) if adaptive else None
    for index, trace in enumerate(inputs):
        if limit is not None and index >= limit:
            break
        started = time.perf_counter()
        scores = _score_one(trace, sampler, prompt_template, embed, config, out, adaptive_plan, _tags(trace, tags, config.mode))
        _write_and_show(scores, out, embed.identity, str(traces), out / "rollouts.sqlite", top, started, profile)
    inputs.exit_if_invalid(skip_invalid)


def example_traces_path() -> Path:
    """The project's example traces (examples/traces.jsonl in the source checkout; the first is the demo's)."""
    from anchors.errors import InputError
    from anchors.paths import project_root

    root = project_root()
    path = root / "examples" / "traces.jsonl" if root else None
    if path is None or not path.is_file():
        raise InputError("the example traces live in a source checkout (examples/traces.jsonl); pass a TRACES.jsonl file")
    return path


def score_example(model: str, out: Path) -> None:
    """`anchors score examples/traces.jsonl --limit 1` with default settings (the demo's last step)."""
    score(traces=example_traces_path(), model=model, out=out, limit=1)


def _tags(trace: Any, labeller: str, mode: str) -> list[str | None] | None:
    """Each sentence's first function tag (the sentences `score` splits the trace into), or None with --tags none."""
    if labeller == "none":
        return None
    from anchors.labels import label_sentences

    return list(label_sentences(trace, labeller=labeller, mode=mode).tags)  # type: ignore[arg-type]


def _adaptive_plan(rollouts: int, max_rollouts: int, target_width: float) -> Any:
    from anchors.methods.adaptive import AdaptiveConfig

    first = min(rollouts, max_rollouts)
    return AdaptiveConfig(initial=first, step=max(1, first // 2), max_rollouts=max_rollouts, target_width=target_width)


def _score_one(trace: Any, sampler: Any, template: Any, embed: Any, config: Any, out: Path, adaptive_plan: Any,
               tags: list[str | None] | None) -> Any:
    from anchors.methods.adaptive import score_trace_adaptive
    from anchors.methods.scores import score_trace

    store = str(out / "rollouts.sqlite")
    out.mkdir(parents=True, exist_ok=True)
    console.stderr.print(f"scoring {trace.id} ({config.mode} mode)", highlight=False)
    if adaptive_plan is not None:
        return score_trace_adaptive(trace, sampler, template, embed, config, adaptive_plan, store=store, tags=tags)
    return score_trace(trace, sampler, template, config, embedder=embed, store=store, tags=tags)


def _score_from_ta(root: Path, config: Any, embed: Any, out: Path, top: int, limit: int | None, profile: bool) -> None:
    from anchors.methods.scores import score_rollouts
    from anchors.methods.ta_rollouts import iter_ta_rollouts

    for index, (rollouts, tags) in enumerate(iter_ta_rollouts(root, config.mode)):
        if limit is not None and index >= limit:
            break
        started = time.perf_counter()
        scores = score_rollouts(rollouts, embed, config, tags)
        _write_and_show(scores, out, embed.identity, str(root), None, top, started, profile)


def _write_and_show(scores: Any, out: Path, embedder: str, source: str, store: Path | None, top: int,
                    started: float, profile: bool = False) -> None:
    from anchors.methods.score_files import add_timing, run_record, write_scores
    from anchors.report.html import write_trace_report

    began = time.perf_counter()
    folder = write_scores(scores, out, run_record(scores, embedder=embedder, source=source,
                                                   store=str(store) if store else None))
    report = write_trace_report(folder)
    timing = {"report_seconds": round(time.perf_counter() - began, 3), "total_seconds": round(time.perf_counter() - started, 3)}
    add_timing(folder, timing)
    _print_top(scores, top)
    if profile:
        _print_phases(scores.trace_id, {**scores.run, **timing})
    matrix = "matrix.npz, " if scores.matrix else ""
    console.stdout.print(f"wrote {folder}/ (scores.jsonl, scores.csv, {matrix}alternatives.json, run.json, {report.name})")


def _print_phases(trace_id: str, run: dict[str, Any]) -> None:
    total = run["total_seconds"]
    phases = [(k.removesuffix("_seconds"), v) for k, v in run.items() if k.endswith("_seconds") and k != "total_seconds"]
    rows = [(name, f"{seconds:.2f}", f"{seconds / total:.0%}" if total else "") for name, seconds in phases]
    rows.append(("other (function tags, segmentation)", f"{total - sum(s for _, s in phases):.2f}", ""))
    console.table(f"{trace_id}: {total:.2f} s by phase", ["phase", "seconds", "share"], rows)


@contextlib.contextmanager
def _profiled(path: Path | None) -> Iterator[None]:
    """Profile the block with cProfile into `path` (None: no profiling) and print its 15 costliest calls."""
    if path is None:
        yield
        return
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        path.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(path)
        listing = io.StringIO()
        pstats.Stats(profiler, stream=listing).sort_stats("cumulative").print_stats(15)
        console.stdout.print(listing.getvalue().strip(), markup=False, highlight=False, soft_wrap=True)
        console.stdout.print(f"wrote {path} (python -m pstats {path})")


def _print_top(scores: Any, k: int) -> None:
    from anchors.methods.scores import HEADLINE

    by = HEADLINE if HEADLINE in scores.computed_metrics else "different_trajectories_fraction"
    frame = scores.top(k, by=by)
    columns = ["#", by, "interval", "anchor", "tag", "sentence"]
    rows = []
    for _, row in frame.iterrows():
        lo, hi = row.get(f"{by}_lo"), row.get(f"{by}_hi")
        defined = isinstance(lo, float) and isinstance(hi, float) and math.isfinite(lo) and math.isfinite(hi)
        interval = f"[{lo:.3f}, {hi:.3f}]" if defined else ""
        rows.append((row["index"], f"{row[by]:.3f}", interval, row.get("anchor"), row.get("tag"), _short(row["text"])))
    console.table(f"{scores.trace_id}: top {len(rows)} sentences by {by}", columns, rows)
    if scores.not_computed:
        console.stdout.print(f"not computed: {', '.join(scores.not_computed)}")


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@compat_app.command("check")
@handles_errors
def compat_check(
    folder: Annotated[Path, typer.Argument(help="A folder in the Thought Anchors layout (e.g. ../shared/data/thought-anchors-viewer).")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write compat_report.json (default: the current folder).")] = None,
    embedder: Embedder = "all-MiniLM-L6-v2",
    similarity: Annotated[bool, typer.Option("--similarity/--no-similarity", help="Also recompute the similarity-based metrics (embeds every resampled sentence: minutes on a CPU the first time, cached after).")] = True,
) -> None:
    """Recompute the published metrics from the authors' files and report how many agree."""
    from anchors.methods.compat import compat_check as run_check
    from anchors.models.embeddings import SentenceEmbedder

    report = run_check(folder, SentenceEmbedder(embedder) if similarity else None, progress=console.track)
    rows = [(name, compared, within, f"{share:.1%}", f"{deviation:.2g}") for name, compared, within, share, deviation in report.summary()]
    console.table(f"compat check: {report.traces} traces from {folder}", ["check", "compared", "within tolerance", "share", "max deviation"], rows)
    _print_categories(report.category_table)
    path = (out or Path(".")) / "compat_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    console.stdout.print(f"wrote {path}")


def _print_categories(table: list[dict[str, Any]]) -> None:
    rows = [(r["model"], r["tag"], r["metric"], f"{r['mean']:.4f}", f"{r['se']:.4f}", r["n_traces"], r["n_sentences"])
            for r in table if r["metric"] == "counterfactual_importance_kl"]
    console.table("category table (counterfactual_importance_kl; all metrics in compat_report.json)",
                  ["model", "tag", "metric", "mean", "se", "traces", "sentences"], rows)
