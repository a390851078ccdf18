"""Black-box thought anchors: `anchors score` and `anchors compat check`."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import (
    Inputs, app, checks_outputs, check_mode, finish, finish_folders,
    handles_errors, limited, parse_shard, reporter, results_dir, ta_reader,
)
from anchors.cli import options as opt
from anchors.cli.backends import build_embedder, build_sampler, dry_run, sampler_options

compat_app = typer.Typer(help="Check anchors against the published method on data in the authors' layout.",
                         no_args_is_help=True, rich_markup_mode="rich")
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
@checks_outputs(out="dir", store="file")
@_profiling
def score(
    traces: opt.Traces = None,
    from_ta: opt.FromTA = None,
    model: opt.Model = "smollm2-135m",
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="Rollouts per prefix (and as many forced answers); with --adaptive, the first round.")] = 8,
    mode: opt.Mode = "default",
    out: opt.Out = Path("results"),
    store: opt.Store = None,
    overwrite: opt.Overwrite = False,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Token budget of each resampled continuation.")] = 96,
    forced: Annotated[bool, typer.Option("--forced/--no-forced", help="Also sample forced answers (forced-answer importance).")] = True,
    matrix: Annotated[bool, typer.Option("--matrix/--no-matrix", help="Also compute the sentence→sentence matrix.")] = True,
    bootstrap: Annotated[int | None, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the intervals (default: 1000; 0 in paper mode).")] = None,
    fdr: Annotated[float, typer.Option("--fdr", help="Benjamini–Hochberg level of the anchor flag.")] = 0.05,
    threshold: Annotated[float, typer.Option("--threshold", help="Cosine below which a resampled sentence counts as different.")] = 0.8,
    seed: opt.Seed = 0,
    adaptive: Annotated[bool, typer.Option("--adaptive", help="Start with --rollouts per prefix, then add half as many per round until each sentence's counterfactual-KL interval is narrower than --target-width or separated from the top 3.")] = False,
    target_width: Annotated[float, typer.Option("--target-width", help="Adaptive: interval width (nats) at which a sentence is done.")] = 1.5,
    max_rollouts: Annotated[int, typer.Option("--max-rollouts", min=1, help="Adaptive: most rollouts per prefix.")] = 50,
    limit: opt.Limit = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the printed table of top anchors.")] = 5,
    embedder: Embedder = "all-MiniLM-L6-v2",
    tags: opt.Tags = "auto",
    outcome: opt.Outcome = "math",
    sentences: opt.Sentences = None,
    backend: opt.Backend = "hf",
    base_url: opt.BaseUrl = None,
    server_kind: opt.ServerKind = "vllm",
    api_key_env: opt.ApiKeyEnv = "OPENAI_API_KEY",
    template: opt.Template = None,
    batch_size: opt.BatchSize = 32,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    concurrency: opt.Concurrency = None,
    ray: opt.Ray = None,
    ray_workers: opt.RayWorkers = None,
    embed_device: opt.EmbedDevice = None,
    dry: opt.DryRun = False,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
    profile: Annotated[bool, typer.Option("--profile", help="Print each trace's seconds per phase (sampling, grading, embedding, metrics; also in its manifest) and the reports', and write a cProfile of the run to OUT/profile.pstats (python -m pstats, snakeviz).")] = False,
) -> None:
    """Which sentences of each trace cause its answer: resample from every sentence, grade, and score."""
    backend_options = sampler_options(locals())  # first: locals() are the options here
    from anchors.analysis import BlackBox

    config = blackbox_config(mode, rollouts, max_new_tokens, forced, matrix, bootstrap, fdr, threshold, seed,
                             outcome=outcome, sentences=sentences)
    spec = BlackBox(config, check_tags(tags), _adaptive_plan(rollouts, max_rollouts, target_width) if adaptive else None)
    results = results_dir(out, overwrite=overwrite, store=store)
    if from_ta is not None:
        if traces is not None:
            raise typer.BadParameter("give either a TRACES.jsonl file or --from-ta DIR, not both")
        opt.math_only(outcome, "--from-ta (the authors' rollouts)")
        _score_from_ta(from_ta, spec.config, build_embedder(embedder, embed_device), results, top, limit, skip_invalid,
                       shard, profile)
        return
    inputs = Inputs(traces, None, shard)
    items = limited(inputs, limit)
    sampler, prompt_template = build_sampler(backend_options)
    spec = with_outcome(spec, prompt_template)
    if dry:
        _dry_run(items, sampler, prompt_template, spec, results.store_path())
        finish(inputs, skip_invalid)
        return
    failed = _score_traces(items, sampler, prompt_template, spec, results,
                           build_embedder(embedder, embed_device, sampler), top, profile)
    finish(inputs, skip_invalid, failed)


def _dry_run(traces: list[Any], sampler: Any, template: Any, spec: Any, store: Path) -> None:
    from anchors.methods.blackbox.sampling import planned_requests, sampling_params

    config, planned = spec.config, [planned_requests(t, template, spec.config) for t in traces]
    jobs = [("resampled continuations", [r for p in planned for r in p["resample"]], sampling_params(config))]
    if config.forced:
        jobs.append(("forced answers", [r for p in planned for r in p.get("forced", [])], sampling_params(config, True)))
    notes = []
    if config.mode == "default":
        closing = sum(r.n for p in planned for r in p["resample"])
        notes.append(f"plus one answer (≤ {config.forced_max_new_tokens} tokens) for each resampled rollout that "
                     f"ends without one: at most {closing}")
    if spec.adaptive is not None:
        notes.append(f"--adaptive: the first round only (later rounds add up to {spec.adaptive.max_rollouts} per prefix)")
    dry_run(sampler, jobs, store, "; ".join(notes) or None)


def blackbox_config(mode: str, rollouts: int, max_new_tokens: int, forced: bool, matrix: bool, bootstrap: int | None,
                    fdr: float, threshold: float, seed: int, *, outcome: str = "math", sentences: str | None = None) -> Any:
    from anchors.methods.blackbox.config import BlackBoxConfig

    return BlackBoxConfig(mode=check_mode(mode), rollouts=rollouts, max_new_tokens=max_new_tokens, forced=forced,  # type: ignore[arg-type]
                          matrix=matrix, bootstrap=bootstrap, fdr=fdr, similarity_threshold=threshold, seed=seed,
                          outcome=outcome.strip(), sentences=opt.parse_indices(sentences, "--sentences"))


def with_outcome(spec: Any, template: Any) -> Any:
    """The black box's settings with the outcome object `config.outcome` names (checked before any sampling),
    and the spec in its canonical spelling (`choice:ABCDE` is `choice`), as the results record it."""
    from anchors.models.templates import paper_template

    config = spec.config
    outcome = opt.command_outcome(config.outcome, mode=config.mode, template=paper_template() if config.paper else template,
                              answer_method=config.answer_method)
    return replace(spec, config=replace(config, outcome=outcome.spec), outcome=outcome)


def check_tags(tags: str) -> str:
    if tags not in ("auto", "offline", "llm", "none"):
        raise typer.BadParameter(f"--tags must be auto, offline, llm or none, not {tags!r}")
    return tags


def _score_traces(traces: list[Any], sampler: Any, template: Any, spec: Any, out: Any, embedder: Any, top: int,
                  profile: bool = False) -> list[str]:
    from anchors.analysis import run_blackbox, write_reports

    failed: list[str] = []
    done = run_blackbox(traces, sampler, template, spec, out, embedder=embedder, on_error=reporter(failed),
                        on_trace=lambda scores: _show(scores, out, top, profile), bar=console.TraceBar)
    if done:
        with _timed_reports(profile):
            write_reports(out, [s.trace_id for s in done])
    return failed


def _adaptive_plan(rollouts: int, max_rollouts: int, target_width: float) -> Any:
    from anchors.methods.blackbox.adaptive import AdaptiveConfig

    first = min(rollouts, max_rollouts)
    return AdaptiveConfig(initial=first, step=max(1, first // 2), max_rollouts=max_rollouts, target_width=target_width)


def _score_from_ta(root: Path, config: Any, embed: Any, out: Any, top: int, limit: int | None, skip_invalid: bool,
                   shard: str | None = None, profile: bool = False) -> None:
    """The metrics from rollouts on disk (no model); a metric they cannot give is the authors' stored value."""
    from anchors.analysis import write_reports
    from anchors.methods.blackbox.scores import score_rollouts
    from anchors.methods.blackbox.ta_rollouts import iter_ta_rollouts, with_authors_metrics
    from anchors.results.save import save_blackbox

    reader, only = ta_reader(root), parse_shard(shard)
    written = []
    for loaded in iter_ta_rollouts(root, config.mode, reader):
        if limit is not None and len(written) >= limit:
            break
        if only is not None and not only.holds(loaded.trace.id):
            continue
        scores = with_authors_metrics(score_rollouts(loaded.rollouts, embed, config, loaded.tags), loaded.stored)
        save_blackbox(out, loaded.trace, scores, embedder=embed.identity, source=str(root))
        _show(scores, out, top, profile)
        written.append(scores.trace_id)
    with _timed_reports(profile):
        write_reports(out, written)
    finish_folders(reader, "scored", skip_invalid)


def _show(scores: Any, out: Any, top: int, profile: bool = False) -> None:
    _print_top(scores, top)
    console.stdout.print(f"wrote {out.trace_dir(scores.trace_id)}/", highlight=False)
    if profile:
        _print_phases(scores.trace_id, scores.run)


def _print_phases(trace_id: str, run: dict[str, Any]) -> None:
    phases = [(k.removesuffix("_seconds"), v) for k, v in run.items() if k.endswith("_seconds")]
    total = sum(seconds for _, seconds in phases)
    rows = [(name, f"{seconds:.2f}", f"{seconds / total:.0%}" if total else "") for name, seconds in phases]
    console.table(f"{trace_id}: {total:.2f} s by phase", ["phase", "seconds", "share"], rows)


@contextlib.contextmanager
def _timed_reports(profile: bool) -> Iterator[None]:
    began = time.perf_counter()
    yield
    if profile:
        console.stdout.print(f"reports (every trace's report.html and the index): {time.perf_counter() - began:.2f} s")


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
    from anchors.methods.blackbox.scores import HEADLINE

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
    if scores.run.get("from_authors"):
        console.stdout.print(f"the authors' stored values (not recomputable from the rollouts on disk): "
                             f"{', '.join(scores.run['from_authors'])}")


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@compat_app.command("check")
@handles_errors
@checks_outputs(out="dir")
def compat_check(
    folder: Annotated[Path, typer.Argument(help="A folder in the Thought Anchors layout (e.g. ../shared/data/thought-anchors-viewer).")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write compat_report.json (default: the current folder).")] = None,
    embedder: Embedder = "all-MiniLM-L6-v2",
    similarity: Annotated[bool, typer.Option("--similarity/--no-similarity", help="Also recompute the similarity-based metrics (embeds every resampled sentence: minutes on a CPU the first time, cached after).")] = True,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Recompute the published metrics from the authors' files and report how many agree."""
    from anchors.methods.blackbox.compat import compat_check as run_check
    from anchors.models.embeddings import SentenceEmbedder

    report = run_check(folder, SentenceEmbedder(embedder) if similarity else None, progress=console.track,
                       on_skip=lambda skipped: console.warn(str(skipped)))
    rows = [(name, compared, within, f"{share:.1%}", f"{deviation:.2g}") for name, compared, within, share, deviation in report.summary()]
    console.table(f"compat check: {report.traces} traces from {folder}", ["check", "compared", "within tolerance", "share", "max deviation"], rows)
    _print_categories(report.category_table)
    path = (out or Path(".")) / "compat_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    console.stdout.print(f"wrote {path}")
    if report.skipped:
        console.warn(f"{report.traces} trace(s) compared; {len(report.skipped)} problem(s) listed under `skipped` in "
                     f"{path}" + ("" if skip_invalid else " (exit 1; --skip-invalid to exit 0)"))
        if not skip_invalid:
            raise typer.Exit(1)


def _print_categories(table: list[dict[str, Any]]) -> None:
    rows = [(r["model"], r["tag"], r["metric"], f"{r['mean']:.4f}", f"{r['se']:.4f}", r["n_traces"], r["n_sentences"])
            for r in table if r["metric"] == "counterfactual_importance_kl"]
    console.table("category table (counterfactual_importance_kl; all metrics in compat_report.json)",
                  ["model", "tag", "metric", "mean", "se", "traces", "sentences"], rows)
