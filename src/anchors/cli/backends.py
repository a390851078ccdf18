"""The sampling backend options `anchors resample` and `anchors score` share, and the sampler they build."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from anchors.errors import AnchorsError

ModelOption = Annotated[str, typer.Option("--model", help="Local: alias, folder, .gguf or hub name. Server: the served model name.")]
BackendOption = Annotated[str, typer.Option("--backend", help="hf (local engine) or openai (OpenAI-compatible servers).")]
BaseUrlOption = Annotated[list[str] | None, typer.Option("--base-url", help="Server base URL, e.g. http://127.0.0.1:8000/v1 (repeat for several; work is sharded by trace).")]
ServerKindOption = Annotated[str, typer.Option("--server-kind", help="vllm, sglang, llama.cpp or openai: which neutral sampling fields to send.")]
ApiKeyEnvOption = Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key (never stored).")]
TemplateOption = Annotated[str | None, typer.Option("--template", help="Prompt template for traces without a prompt: paper, r1-distill, qwen3 or chat (default: the model's).")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Local engine: rows decoded together.")]
DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")]
DtypeOption = Annotated[str | None, typer.Option("--dtype", help="float32 or bfloat16.")]


def build_sampler(model: str, backend: str, base_url: list[str] | None, server_kind: str, api_key_env: str,
                  batch_size: int, device: str | None, dtype: str | None, template: str | None) -> tuple[Any, Any]:
    """The sampler and the template to render prompts with (a server and no --template: the R1-distill format,
    which fits most reasoning models). Every command that samples builds its sampler here, so the same options
    give the same prompts and the rollouts one command stored are found by the next."""
    from anchors.rollouts.factory import make_sampler

    if backend == "openai":
        if not base_url:
            raise AnchorsError("--backend openai needs at least one --base-url")
        from anchors.models.templates import make_template

        if template not in (None, "paper", "r1-distill"):
            raise AnchorsError("with --backend openai, --template can be 'paper' or 'r1-distill' (chat templates need the tokenizer)")
        prompt_template = make_template(template or "r1-distill", model)
        return make_sampler(model, server_urls=base_url, api_key_env=api_key_env, server_kind=server_kind), prompt_template
    if backend != "hf":
        raise AnchorsError(f"--backend must be 'hf' or 'openai', not {backend!r}")
    if base_url:
        raise AnchorsError("--base-url is for --backend openai")
    engine = make_sampler(model, device=device, dtype=dtype, template=template, batch_size=batch_size)
    return engine, engine.handle.template
