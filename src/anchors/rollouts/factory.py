"""make_sampler: a model name or handle (and optionally server URLs) → the right `Sampler`; `open_sampler`: the
sampler (local, servers, or either on a Ray cluster) and prompt template that `SamplerOptions` name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from anchors.errors import AnchorsError
from anchors.rollouts.base import Sampler

if TYPE_CHECKING:
    from anchors.models import ModelHandle
    from anchors.models.templates import PromptTemplate

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


def make_sampler(
    model: str | ModelHandle,
    *,
    server_urls: Sequence[str] | None = None,
    api_key_env: str = DEFAULT_API_KEY_ENV,
    **load_options: Any,
) -> Sampler:
    """The local shared-prefix engine on `model`, or, when `server_urls` are given, the OpenAI-compatible
    server backend asking those servers for the model they serve under the name `model`.

    Local: `load_options` go to `load_model` (device, dtype, template) except the engine's own
    `batch_size`, `prefill_chunk` and `share_nested`. Server: they go to `OpenAICompatibleSampler`
    (concurrency, timeout_s, max_retries, n_per_request, think_close, tokenizer, extra_body, …); the API key
    is read from the environment variable `api_key_env` and never stored.
    """
    if server_urls:
        from anchors.rollouts.server import OpenAICompatibleSampler

        name = model if isinstance(model, str) else model.name
        if not isinstance(model, str):
            load_options.setdefault("tokenizer", model.tokenizer)
            load_options.setdefault("think_close", model.template.think_close)
        return OpenAICompatibleSampler(list(server_urls), name, api_key_env=api_key_env, **load_options)
    from anchors.rollouts.local import LocalEngine

    engine_options = {k: load_options.pop(k) for k in ("batch_size", "prefill_chunk", "share_nested") if k in load_options}
    if isinstance(model, str):
        from anchors.models import load_model

        model = load_model(model, **load_options)
    elif load_options:
        raise TypeError(f"load options {sorted(load_options)} need a model name, not a loaded ModelHandle")
    return LocalEngine(model, **engine_options)


@dataclass(frozen=True)
class SamplerOptions:
    """Where rollouts are sampled, named as the sampling commands' options are (with their defaults): the local
    engine on `model` (backend 'hf'), or the `base_url` servers serving it (backend 'openai'); either one on the
    workers of a Ray cluster with `ray` (an address, 'auto' or 'local')."""

    model: str = "smollm2-135m"
    backend: Literal["hf", "openai"] = "hf"
    base_url: Sequence[str] | None = None
    server_kind: str = "vllm"
    api_key_env: str = DEFAULT_API_KEY_ENV
    batch_size: int = 32  # local engine: rows decoded together
    device: str | None = None
    dtype: str | None = None
    template: str | None = None  # prompt template of traces without a prompt (default: the model's)
    concurrency: int | None = None  # server: calls in flight per server
    ray: str | None = None
    ray_workers: int | None = None  # Ray and a local model: engines to start


def open_sampler(options: SamplerOptions) -> tuple[Sampler, PromptTemplate]:
    """The sampler and the template to render prompts with (a server and no template: the R1-distill format, which
    fits most reasoning models). The same options give the same prompts and sampler identity, in-process or on a
    Ray worker, so the rollouts one run stored are found by the next. A Ray sampler runs until its `close()`."""
    if options.backend == "openai":
        return _servers(options)
    if options.backend != "hf":
        raise AnchorsError(f"--backend must be 'hf' or 'openai', not {options.backend!r}")
    if options.base_url:
        raise AnchorsError("--base-url is for --backend openai")
    if options.concurrency is not None:
        raise AnchorsError("--concurrency is for --backend openai (calls in flight per server); a local engine "
                           "decodes --batch-size rows together")
    load = {"device": options.device, "dtype": options.dtype, "template": options.template,
            "batch_size": options.batch_size}
    if options.ray is not None:
        from anchors.rollouts.cluster import connect, local_engines

        connect(options.ray)
        sampler = local_engines(options.model, workers=options.ray_workers, **load)
        return sampler, sampler.template
    if options.ray_workers is not None:
        raise AnchorsError("--ray-workers needs --ray")
    engine = make_sampler(options.model, **load)
    return engine, engine.handle.template  # type: ignore[attr-defined]


def _servers(options: SamplerOptions) -> tuple[Sampler, PromptTemplate]:
    from anchors.models.templates import make_template

    if not options.base_url:
        raise AnchorsError("--backend openai needs at least one --base-url")
    if options.ray_workers is not None:
        raise AnchorsError("--ray-workers is for a local model; with servers, each --base-url gets its workers")
    if options.template not in (None, "paper", "r1-distill"):
        raise AnchorsError("with --backend openai, --template can be 'paper' or 'r1-distill' (chat templates need the tokenizer)")
    template = make_template(options.template or "r1-distill", options.model)
    client = {"api_key_env": options.api_key_env, "server_kind": options.server_kind, "concurrency": options.concurrency}
    if options.ray is not None:
        from anchors.rollouts.cluster import connect, server_clients

        connect(options.ray)
        return server_clients(options.model, options.base_url, **client), template
    return make_sampler(options.model, server_urls=options.base_url, **client), template
