"""`anchors resample`: sample N rollouts from every sentence prefix of each trace, into the rollout store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from anchors import console
from anchors.cli import FromTA, Inputs, ModeOption, SkipInvalid, app, check_mode, handles_errors
from anchors.errors import AnchorsError


@app.command()
@handles_errors
def resample(
    traces: Annotated[Optional[Path], typer.Argument(help="JSONL file of traces.")] = None,
    model: Annotated[str, typer.Option("--model", help="Local: alias, folder, .gguf or hub name. Server: the served model name.")] = "smollm2-135m",
    rollouts: Annotated[int, typer.Option("--rollouts", min=1, help="Rollouts per sentence.")] = 100,
    backend: Annotated[str, typer.Option("--backend", help="hf (local engine) or openai (OpenAI-compatible servers).")] = "hf",
    base_url: Annotated[Optional[list[str]], typer.Option("--base-url", help="Server base URL, e.g. http://127.0.0.1:8000/v1 (repeat for several; work is sharded by trace).")] = None,
    server_kind: Annotated[str, typer.Option("--server-kind", help="vllm, sglang, llama.cpp or openai: which neutral sampling fields to send.")] = "vllm",
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key (never stored).")] = "OPENAI_API_KEY",
    store: Annotated[Optional[Path], typer.Option("--store", help="SQLite rollout store (default: cache/rollouts.sqlite); re-runs top up what is missing.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 1024,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    mode: ModeOption = "default",
    template: Annotated[Optional[str], typer.Option("--template", help="Prompt template for traces without a prompt (default: the model's).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Local engine: rows decoded together.")] = 32,
    device: Annotated[Optional[str], typer.Option("--device")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="float32 or bfloat16.")] = None,
    export_ta: Annotated[Optional[Path], typer.Option("--export-ta", help="Also write each trace as a Thought Anchors folder (chunk_{i}/solutions.json) here.")] = None,
    from_ta: FromTA = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Resample every sentence of each trace N times (methods.md §4) with the local engine or a server."""
    from anchors.rollouts.base import SamplingParams
    from anchors.rollouts.jobs import SamplingFailed, collect_rollouts
    from anchors.rollouts.schedule import resampling_requests
    from anchors.rollouts.store import default_store_path

    mode = check_mode(mode)
    sampler, prompt_template, tokenizer = _sampler(model, backend, base_url, server_kind, api_key_env, batch_size,
                                                   device, dtype, template)
    inputs = Inputs(traces, from_ta)
    planned = [(trace, resampling_requests(trace, rollouts=rollouts, seed=seed, mode=mode, template=prompt_template,
                                           tokenizer=tokenizer)) for trace in inputs]
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    everything = [r for _, requests in planned for r in requests]
    store_path = store or default_store_path()
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


def _sampler(model: str, backend: str, base_url: list[str] | None, server_kind: str, api_key_env: str,
             batch_size: int, device: str | None, dtype: str | None, template: str | None) -> tuple[Any, Any, Any]:
    """The sampler, the template to render prompts with, and the tokenizer that cuts exact prefixes (or None)."""
    from anchors.rollouts.factory import make_sampler

    if backend == "openai":
        if not base_url:
            raise AnchorsError("--backend openai needs at least one --base-url")
        from anchors.models.templates import make_template

        prompt_template = make_template(template, model) if template in ("paper", "r1-distill") else None
        if template is not None and prompt_template is None:
            raise AnchorsError("with --backend openai, --template can be 'paper' or 'r1-distill' (chat templates need the tokenizer)")
        return make_sampler(model, server_urls=base_url, api_key_env=api_key_env, server_kind=server_kind), prompt_template, None
    if backend != "hf":
        raise AnchorsError(f"--backend must be 'hf' or 'openai', not {backend!r}")
    if base_url:
        raise AnchorsError("--base-url is for --backend openai")
    engine = make_sampler(model, device=device, dtype=dtype, template=template, batch_size=batch_size)
    return engine, engine.handle.template, engine.handle.tokenizer


def _summary(planned: list[tuple[Any, list[Any]]], results: dict[str, list[Any]], store: Path) -> None:
    rows = []
    for trace, requests in planned:
        got = [r for request in requests for r in results.get(request.key, [])]
        finishes = Counter(r.finish_reason for r in got)
        rows.append((trace.id, len(requests), len(got), ", ".join(f"{k} {v}" for k, v in sorted(finishes.items()))))
    console.table("Rollouts", ["trace", "sentences", "rollouts", "finish reasons"], rows)
    console.stdout.print(f"store: {store}")


def _export(planned: list[tuple[Any, list[Any]]], results: dict[str, list[Any]], out: Path, mode: str) -> None:
    from anchors.rollouts.ta_layout import export_thought_anchors

    for trace, requests in planned:
        folder = export_thought_anchors(trace, requests, results, out, mode=mode)  # type: ignore[arg-type]
        console.stdout.print(f"wrote {folder}")
