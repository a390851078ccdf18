"""make_sampler: a model name or handle (and optionally server URLs) → the right `Sampler`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from anchors.rollouts.base import Sampler

if TYPE_CHECKING:
    from anchors.models import ModelHandle

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
