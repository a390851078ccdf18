"""`anchors resample`: sample N rollouts from every sentence prefix of each trace, into the rollout store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import (
    FromTA,
    Inputs,
    ModeOption,
    OutOption,
    ShardOption,
    SkipInvalid,
    app,
    check_mode,
    checks_outputs,
    handles_errors,
    results_dir,
)
from anchors.cli.backends import (
    ApiKeyEnvOption,
    BackendOption,
    BaseUrlOption,
    BatchSizeOption,
    ConcurrencyOption,
    DeviceOption,
    DryRunOption,
    DtypeOption,
    ModelOption,
    RayOption,
    RayWorkersOption,
    ServerKindOption,
    TemplateOption,
    build_sampler,
    dry_run,
)
from anchors.cli.options import SentencesOption, parse_indices
from anchors.errors import AnchorsError


@app.command()
@handles_errors
@checks_outputs(out="dir", store="file", export_ta="dir")
def resample(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    model: ModelOption = "smollm2-135m",
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="Rollouts per sentence.")] = 100,
    backend: BackendOption = "hf",
    base_url: BaseUrlOption = None,
    server_kind: ServerKindOption = "vllm",
    api_key_env: ApiKeyEnvOption = "OPENAI_API_KEY",
    out: OutOption = Path("results"),
    store: Annotated[Path | None, typer.Option("--store", help="SQLite rollout store (default: OUT/rollouts.sqlite, where score, causality and analyze into the same OUT find the rollouts); re-runs top up what is missing.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 1024,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    mode: ModeOption = "default",
    template: TemplateOption = None,
    batch_size: BatchSizeOption = 32,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    sentences: SentencesOption = None,
    concurrency: ConcurrencyOption = None,
    ray: RayOption = None,
    ray_workers: RayWorkersOption = None,
    dry: DryRunOption = False,
    export_ta: Annotated[Path | None, typer.Option("--export-ta", help="Also write each trace as a Thought Anchors folder (chunk_{i}/solutions.json) here.")] = None,
    from_ta: FromTA = None,
    shard: ShardOption = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Resample every sentence of each trace N times into the rollout store, with the local engine or a server (the black-box methods then read them with no sampling)."""
    from anchors.rollouts.jobs import SamplingFailed, collect_rollouts
    from anchors.rollouts.plan import resampling_requests, sampling_params

    mode = check_mode(mode)
    inputs = Inputs(traces, from_ta, shard)
    sampler, prompt_template = build_sampler(model, backend, base_url, server_kind, api_key_env, batch_size,
                                             device, dtype, template, concurrency=concurrency, ray=ray,
                                             ray_workers=ray_workers)
    chosen = parse_indices(sentences, "--sentences")
    planned = [(trace, resampling_requests(trace, rollouts=rollouts, seed=seed, mode=mode, template=prompt_template,
                                           sentences=chosen))
               for trace in inputs]
    params = sampling_params(temperature, top_p, max_new_tokens)
    everything = [r for _, requests in planned for r in requests]
    store_path = results_dir(out, store=store).store_path()
    if dry:
        dry_run(sampler, [("resampled continuations", everything, params)], store_path)
        inputs.exit_if_invalid(skip_invalid)
        return
    failed = None
    try:
        results = collect_rollouts(sampler, everything, params, store=store_path)
    except SamplingFailed as error:
        results, failed = error.results, error
    _summary(planned, results, store_path)
    if export_ta is not None:
        _export(planned, results, export_ta, mode)
    if failed is not None:
        raise AnchorsError(str(failed))
    inputs.exit_if_invalid(skip_invalid)


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
