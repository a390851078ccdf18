"""`anchors resample`: sample N rollouts from every sentence prefix of each trace, into the rollout store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import Inputs, app, check_mode, checks_outputs, handles_errors, results_dir
from anchors.cli import options as opt
from anchors.cli.backends import build_sampler, dry_run, sampler_options
from anchors.errors import AnchorsError


@app.command()
@handles_errors
@checks_outputs(out="dir", store="file", export_ta="dir")
def resample(
    traces: opt.Traces = None,
    model: opt.Model = "smollm2-135m",
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="Rollouts per sentence.")] = 100,
    backend: opt.Backend = "hf",
    base_url: opt.BaseUrl = None,
    server_kind: opt.ServerKind = "vllm",
    api_key_env: opt.ApiKeyEnv = "OPENAI_API_KEY",
    out: opt.Out = Path("results"),
    store: Annotated[Path | None, typer.Option("--store", help="SQLite rollout store (default: OUT/rollouts.sqlite, where score, causality and analyze into the same OUT find the rollouts); re-runs top up what is missing.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 1024,
    temperature: opt.Temperature = 0.6,
    top_p: opt.TopP = 0.95,
    seed: opt.Seed = 0,
    mode: opt.Mode = "default",
    template: opt.Template = None,
    batch_size: opt.BatchSize = 32,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    sentences: opt.Sentences = None,
    concurrency: opt.Concurrency = None,
    ray: opt.Ray = None,
    ray_workers: opt.RayWorkers = None,
    dry: opt.DryRun = False,
    export_ta: Annotated[Path | None, typer.Option("--export-ta", help="Also write each trace as a Thought Anchors folder (chunk_{i}/solutions.json) here.")] = None,
    from_ta: opt.FromTA = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Resample every sentence of each trace N times into the rollout store, with the local engine or a server (the black-box methods then read them with no sampling)."""
    backend_options = sampler_options(locals())  # first: locals() are the options here
    from anchors.rollouts.plan import resampling_requests, sampling_params

    mode, inputs = check_mode(mode), Inputs(traces, from_ta, shard)
    sampler, prompt_template = build_sampler(backend_options)
    chosen = opt.parse_indices(sentences, "--sentences")
    planned = [(trace, resampling_requests(trace, rollouts=rollouts, seed=seed, mode=mode, template=prompt_template,
                                           sentences=chosen))
               for trace in inputs]
    params = sampling_params(temperature, top_p, max_new_tokens)
    everything = [r for _, requests in planned for r in requests]
    store_path = results_dir(out, store=store).store_path()
    if dry:
        dry_run(sampler, [("resampled continuations", everything, params)], store_path)
    else:
        _sample(sampler, planned, everything, params, store_path, export_ta, mode)
    inputs.exit_if_invalid(skip_invalid)


def _sample(sampler: Any, planned: list[tuple[Any, list[Any]]], requests: list[Any], params: Any, store: Path,
            export_ta: Path | None, mode: str) -> None:
    """Sample what the store lacks, print what it holds for each trace and export it; a failed rollout is an error
    after that (the others are stored, and a re-run retries only it)."""
    from anchors.rollouts.jobs import SamplingFailed, collect_rollouts

    failed = None
    try:
        results = collect_rollouts(sampler, requests, params, store=store)
    except SamplingFailed as error:
        results, failed = error.results, error
    _summary(planned, results, store)
    if export_ta is not None:
        _export(planned, results, export_ta, mode)
    if failed is not None:
        raise AnchorsError(str(failed))


def _summary(planned: list[tuple[Any, list[Any]]], results: dict[str, list[Any]], store: Path) -> None:
    rows = []
    for trace, requests in planned:
        got = [r for request in requests for r in results.get(request.key, [])]
        finishes = Counter(r.finish_reason for r in got)
        rows.append((trace.id, len(requests), len(got), ", ".join(f"{k} {v}" for k, v in sorted(finishes.items()))))
    console.table("Rollouts", ["trace", "sentences", "rollouts", "finish reasons"], rows)
    console.stdout.print(f"store: {store}")


def _export(planned: list[tuple[Any, list[Any]]], results: dict[str, list[Any]], out: Path, mode: str) -> None:
    from anchors.thought_anchors.rollouts import export_thought_anchors

    for trace, requests in planned:
        folder = export_thought_anchors(trace, requests, results, out, mode=mode)  # type: ignore[arg-type]
        console.stdout.print(f"wrote {folder}")
