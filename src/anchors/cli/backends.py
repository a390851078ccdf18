"""The sampling backend options the sampling commands share (resample, score, causality, analyze), and the sampler
and embedder they build."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from anchors.errors import AnchorsError

ModelOption = Annotated[str, typer.Option("--model", help="Local: alias, folder, .gguf or hub name. Server: the served model name.")]
BackendOption = Annotated[Literal["hf", "openai"], typer.Option("--backend", help="hf (local engine) or openai (OpenAI-compatible servers).")]
BaseUrlOption = Annotated[list[str] | None, typer.Option("--base-url", help="Server base URL, e.g. http://127.0.0.1:8000/v1 (repeat for several: each takes the next prefix block when it has a free slot).")]
ConcurrencyOption = Annotated[int | None, typer.Option("--concurrency", min=1, help="Server: calls in flight per server (default: 8 for vllm/sglang/openai, 1 for llama.cpp).")]
RayOption = Annotated[str | None, typer.Option("--ray", help="Sample on a Ray cluster: an address, auto (the running cluster) or local (this machine, loopback only). Needs pip install 'anchors[ray]'.")]
RayWorkersOption = Annotated[int | None, typer.Option("--ray-workers", min=1, help="With --ray and a local model: engines to start (default: one per GPU of the cluster, else one per node).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the rollouts and tokens the run still needs (the store's rows are not sampled again) and the time they take at a tokens/s measured on a short probe; sample nothing else, write nothing.")]
EmbedDeviceOption = Annotated[str | None, typer.Option("--embed-device", help="Device of the sentence embedder: cpu (default) or cuda; with --ray, on the workers.")]
ServerKindOption = Annotated[Literal["vllm", "sglang", "llama.cpp", "openai"], typer.Option("--server-kind", help="vllm, sglang, llama.cpp or openai: which neutral sampling fields to send.")]
ApiKeyEnvOption = Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key (never stored).")]
TemplateOption = Annotated[Literal["paper", "r1-distill", "qwen3", "chat"] | None, typer.Option("--template", help="Prompt template for traces without a prompt: paper, r1-distill, qwen3 or chat (default: the model's).")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Local engine: rows decoded together.")]
DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")]
DtypeOption = Annotated[Literal["float32", "bfloat16", "float16"] | None, typer.Option("--dtype", help="float32 or bfloat16 (default: float32 on CPU).")]


def build_sampler(model: str, backend: str, base_url: list[str] | None, server_kind: str, api_key_env: str,
                  batch_size: int, device: str | None, dtype: str | None, template: str | None, *,
                  concurrency: int | None = None, ray: str | None = None,
                  ray_workers: int | None = None) -> tuple[Any, Any]:
    """The sampler and the template to render prompts with (a server and no --template: the R1-distill format,
    which fits most reasoning models). Every command that samples builds its sampler here, so the same options
    give the same prompts and the rollouts one command stored are found by the next (a Ray worker's sampler has
    the identity the same sampler has in-process)."""
    from anchors.rollouts.factory import make_sampler

    if backend == "openai":
        if not base_url:
            raise AnchorsError("--backend openai needs at least one --base-url")
        if ray_workers is not None:
            raise AnchorsError("--ray-workers is for a local model; with servers, each --base-url gets its workers")
        from anchors.models.templates import make_template

        if template not in (None, "paper", "r1-distill"):
            raise AnchorsError("with --backend openai, --template can be 'paper' or 'r1-distill' (chat templates need the tokenizer)")
        prompt_template = make_template(template or "r1-distill", model)
        options = {"api_key_env": api_key_env, "server_kind": server_kind, "concurrency": concurrency}
        if ray is not None:
            from anchors.rollouts.cluster import connect, server_clients

            connect(ray)
            return _opened(server_clients(model, base_url, **options)), prompt_template
        return make_sampler(model, server_urls=base_url, **options), prompt_template
    if backend != "hf":
        raise AnchorsError(f"--backend must be 'hf' or 'openai', not {backend!r}")
    if base_url:
        raise AnchorsError("--base-url is for --backend openai")
    if concurrency is not None:
        raise AnchorsError("--concurrency is for --backend openai (calls in flight per server); a local engine "
                           "decodes --batch-size rows together")
    if ray is not None:
        return ray_engines(model, ray, ray_workers, batch_size, device, dtype, template)
    if ray_workers is not None:
        raise AnchorsError("--ray-workers needs --ray")
    engine = make_sampler(model, device=device, dtype=dtype, template=template, batch_size=batch_size)
    return engine, engine.handle.template


def ray_engines(model: str, ray: str, workers: int | None, batch_size: int, device: str | None, dtype: str | None,
                template: str | None) -> tuple[Any, Any]:
    """Local engines on the workers of a Ray cluster, and their template."""
    from anchors.rollouts.cluster import connect, local_engines

    connect(ray)
    sampler = _opened(local_engines(model, workers=workers, device=device, batch_size=batch_size, dtype=dtype,
                                    template=template))
    return sampler, sampler.template


def build_embedder(name: str, device: str | None, sampler: Any = None) -> Any:
    """The sentence embedder on `device`; with a Ray sampler, its encoding runs on that sampler's workers."""
    from anchors.rollouts.cluster import RaySampler, ray_embedder

    if isinstance(sampler, RaySampler):
        return ray_embedder(sampler, name, device=device)
    from anchors import console
    from anchors.models.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder(name, device=device or "cpu")
    embedder.on_progress = console.CountBar("embedding sentences")
    return embedder


# The Ray samplers a command opened: their workers are stopped when the command ends (see close_samplers).
_OPEN: list[Any] = []


def _opened(sampler: Any) -> Any:
    _OPEN.append(sampler)
    return sampler


def close_samplers() -> None:
    """Stop the workers of every Ray sampler opened by the command that just ended."""
    while _OPEN:
        _OPEN.pop().close()


def dry_run(sampler: Any, jobs: list[tuple[str, list[Any], Any]], store: Any, note: str | None = None) -> None:
    """The `--dry-run` report of (label, requests, params) jobs against `store` (anchors.rollouts.estimate)."""
    from anchors import console
    from anchors.rollouts.estimate import duration, job_cost, measure_rate

    costs = [job_cost(label, sampler, requests, params, store, _token_counter(sampler)) for label, requests, params in jobs]
    console.table(f"dry run: {sampler.identity}", ["job", "requests", "rollouts", "stored", "to sample",
                                                   "prompt tokens", "new tokens ≤", "new tokens ≈"],
                  [(c.label, c.requests, c.rollouts, c.stored, c.to_sample, "?" if c.prompt_tokens is None else c.prompt_tokens,
                    c.new_tokens_at_most, c.new_tokens_expected if c.mean_stored_tokens is not None else "(none stored)")
                   for c in costs])
    if note:
        console.stdout.print(note, highlight=False)
    left = [(requests, params) for (_, requests, params), cost in zip(jobs, costs) if cost.to_sample]
    if not left:
        console.stdout.print("nothing to sample: the store holds every planned rollout", highlight=False)
        return
    rate = measure_rate(sampler, *left[0])
    if rate.tokens_per_s <= 0:
        console.warn("the probe sampled no tokens: no time estimate")
        return
    expected = sum(c.new_tokens_expected for c in costs) / rate.tokens_per_s
    at_most = sum(c.new_tokens_at_most for c in costs) / rate.tokens_per_s
    console.stdout.print(f"measured: {rate.tokens_per_s:,.1f} new tokens/s ({rate.rollouts} rollouts, {rate.tokens} tokens "
                         f"in {rate.seconds:.1f} s)\nestimated time: {duration(expected)} at the mean length of the "
                         f"rollouts stored (their budget where none are), at most {duration(at_most)}", highlight=False)


def _token_counter(sampler: Any) -> Any:
    """Counts a prompt's tokens when the sampler has its tokenizer here (None: unknown)."""
    handle = getattr(sampler, "handle", None)
    if handle is not None:
        return lambda text: len(handle.encode_text_prompt(text))
    tokenizer = getattr(sampler, "tokenizer", None)
    if tokenizer is not None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return None
