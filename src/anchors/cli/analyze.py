"""`anchors analyze`: every method on each trace into one results folder (one model, one rollout store), then the
report that shows them side by side."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import Inputs, app, check_mode, checks_outputs, finish, handles_errors, limited, reporter, results_dir
from anchors.cli import options as opt
from anchors.cli.backends import build_embedder, build_sampler, sampler_options
from anchors.errors import InputError

ALL = ("blackbox", "tags", "receivers", "suppression", "patching", "causality")
MethodsOption = Annotated[str, typer.Option("--methods", help=f"Comma-separated: {', '.join(ALL)}, or all.")]


@app.command()
@handles_errors
@checks_outputs(out="dir", store="file")
def analyze(
    traces: opt.Traces = None,
    from_ta: opt.FromTA = None,
    methods: MethodsOption = "all",
    model: opt.Model = "smollm2-135m",
    mode: opt.Mode = "default",
    out: opt.Out = Path("results"),
    store: opt.Store = None,
    overwrite: opt.Overwrite = False,
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="Black box: rollouts per prefix (and as many forced answers).")] = 8,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Black box: token budget of each resampled continuation.")] = 96,
    bootstrap: Annotated[int | None, typer.Option("--bootstrap", min=0, help="Black box: bootstrap resamples (default 1000; 0 in paper mode).")] = None,
    tags: opt.Tags = "auto",
    tests: Annotated[str, typer.Option("--tests", help="Causality: which trace-level tests (see anchors causality --help).")] = "validity,early,filler,mistakes,paraphrase,resilience",
    samples: Annotated[int, typer.Option("--samples", min=1, help="Causality: forced answers per truncation point / condition.")] = 3,
    importance: Annotated[str | None, typer.Option("--importance", help="Causality: the column resilience picks its sentences by (default: counterfactual_importance_kl when the black box runs).")] = None,
    replacements: Annotated[Path | None, typer.Option("--replacements", help="Patching: counterfactual sentences (JSONL); default: the black box's first different resampled sentence.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Receivers: receiver heads to keep.")] = 20,
    sentences: Annotated[str | None, typer.Option("--sentences", help="Only these sentence positions, e.g. '3,5-9' (default: all): the black box scores only them (sampling the prefixes before and after each), the causality tests pick positions among them, suppression and patching do only them.")] = None,
    outcome: opt.Outcome = "math",
    seed: opt.Seed = 0,
    limit: opt.Limit = None,
    batch_size: opt.BatchSize = 32,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    ray: opt.Ray = None,
    ray_workers: opt.RayWorkers = None,
    embed_device: opt.EmbedDevice = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Every method on each trace, into one results folder, then the report: which sentences matter by resampling,
    attention, suppression and patching, do the methods agree, and does the trace cause the answer at all."""
    backend_options = sampler_options(locals())  # first: locals() are the options here
    from anchors.analysis import analyze as run_all
    from anchors.cli.score import with_outcome
    from anchors.models import load_model

    chosen = _methods(methods, replacements)
    inputs = Inputs(traces, from_ta, shard)
    items = limited(inputs, limit)
    results = results_dir(out, overwrite=overwrite, store=store)
    handle = load_model(model, device=device, dtype=dtype)
    plan = _analysis(chosen, check_mode(mode), rollouts, max_new_tokens, bootstrap, tags, tests, samples, importance,
                     replacements, top_k, sentences, seed, outcome)
    if plan.blackbox is not None:
        plan = replace(plan, blackbox=with_outcome(plan.blackbox, handle.template))
    failed: list[str] = []
    engine, trace_sampler = _samplers(handle, backend_options, results, plan)
    reports = run_all(items, plan, results, handle=handle, sampler=engine, template=handle.template,
                      embedder=build_embedder("all-MiniLM-L6-v2", embed_device, engine), trace_sampler=trace_sampler,
                      progress=console.track, on_error=reporter(failed), bar=console.TraceBar)
    console.stdout.print(f"wrote {len(reports)} report(s): {results.index_path()}")
    finish(inputs, skip_invalid, failed)


def _methods(text: str, replacements: Path | None) -> tuple[str, ...]:
    chosen = ALL if text.strip() == "all" else tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in chosen if m not in ALL]
    if unknown or not chosen:
        raise InputError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL)} or all")
    if "patching" in chosen and "blackbox" not in chosen and replacements is None:
        raise InputError("--methods patching needs counterfactual sentences: add blackbox (its resampled sentences are "
                         "used) or give --replacements FILE")
    return chosen


def _analysis(chosen: tuple[str, ...], mode: str, rollouts: int, max_new_tokens: int, bootstrap: int | None, tags: str,
              tests: str, samples: int, importance: str | None, replacements: Path | None, top_k: int,
              sentences: str | None, seed: int, outcome: str = "math") -> Any:
    """The methods' settings: exactly what each single-method command builds from the same options."""
    if outcome.strip() != "math" and "patching" in chosen:
        raise InputError(f"--outcome {outcome}: activation patching forces the trace's own math answer; run the other "
                         "methods with --methods (without patching), or patch with --outcome math")
    from anchors.analysis import Analysis, BlackBox
    from anchors.cli.causality import causality_config
    from anchors.cli.score import blackbox_config, check_tags
    from anchors.cli.whitebox import patching_config, receiver_config, suppression_config

    blackbox = None
    if "blackbox" in chosen:
        config = blackbox_config(mode, rollouts, max_new_tokens, True, True, bootstrap, 0.05, 0.8, seed,
                                 outcome=outcome, sentences=sentences)
        blackbox = BlackBox(config, check_tags(tags))
    causality = causality_config(tests, samples=samples, seed=seed, sentences=sentences) if "causality" in chosen else None
    if importance is None and causality is not None and blackbox is not None and "resilience" in causality.tests:
        importance = "counterfactual_importance_kl"
    return Analysis(
        blackbox=blackbox, tags=_labeller(tags) if "tags" in chosen else None, tags_mode=mode,
        receivers=receiver_config(mode, top_k) if "receivers" in chosen else None,
        suppression=suppression_config(mode, sentences=sentences) if "suppression" in chosen else None,
        patching=patching_config(mode, sentences=sentences) if "patching" in chosen else None,
        replacements=_replacement_file(replacements), causality=causality, importance=importance, outcome=outcome,
    )  # fmt: skip


def _labeller(tags: str) -> Any:
    from anchors.labels.api import resolve_labeller

    return resolve_labeller("auto" if tags == "none" else tags)  # type: ignore[arg-type]


def _replacement_file(path: Path | None) -> Any:
    if path is None:
        return None
    from anchors.methods.whitebox.replacements import read_replacements

    table = read_replacements(path)
    return lambda trace: table.get(trace.id, {})


def _samplers(handle: Any, options: Any, results: Any, plan: Any) -> tuple[Any, Any]:
    """The shared-prefix engine on the loaded model (or, with --ray, one on each worker of the cluster), for the
    black box and (wrapped) the causality tests, both reading answers with the chosen outcome (checked here,
    before any work); the white-box methods use the loaded model here."""
    from anchors.cli.causality import trace_sampler_for
    from anchors.rollouts.factory import make_sampler

    engine = build_sampler(options)[0] if options.ray is not None else make_sampler(handle, batch_size=options.batch_size)
    outcome = opt.command_outcome(plan.outcome, template=handle.template)
    return engine, trace_sampler_for(engine, handle.template, results.store_path(), outcome)
