"""The reference sampler: seeded sampling with Hugging Face `generate`, simple and correct, not fast. The local
engine (`rollouts.local`) is checked against it and benchmarked against it (benchmarks/rollout_engine.py).

Every sampler in anchors takes a seed; the same seed on CPU gives the same samples. The global
torch RNG is left as it was (the seed applies inside a forked RNG state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anchors.models.handle import ModelHandle
from anchors.rollouts.stops import first_stop_end, tokens_covering
from anchors.types import FinishReason


@dataclass(frozen=True)
class Sample:
    """One sampled continuation of a prompt.

    `token_ids` are the generated tokens without the end token; with a stop string they run up
    to the token that completes it. `text` is their decoding, cut right after the stop string.
    """

    token_ids: tuple[int, ...]
    text: str
    finish_reason: FinishReason


def sample(
    handle: ModelHandle,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int,
    temperature: float = 0.6,
    top_p: float = 0.95,
    seed: int,
    stop_strings: Sequence[str] = (),
    num_samples: int = 1,
) -> list[Sample]:
    """`num_samples` continuations of `prompt_ids`, sampled in one batch.

    Pure temperature + nucleus sampling (no top-k, no repetition penalty, whatever the model's
    generation config says); temperature 0 means greedy. Stops at any of `handle.eos_token_ids`,
    at any of `stop_strings` (included in the text), or after `max_new_tokens`.
    """
    import torch

    if not prompt_ids:
        raise ValueError("prompt_ids is empty: pass at least one token (e.g. the BOS token)")
    inputs = torch.tensor([list(prompt_ids)] * num_samples, dtype=torch.long, device=handle.device)
    config = _generation_config(handle, max_new_tokens, temperature, top_p, stop_strings)
    with torch.random.fork_rng(devices=_cuda_devices(handle)), torch.no_grad():
        torch.manual_seed(seed)
        output = handle.hf_model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            generation_config=config,
            tokenizer=handle.tokenizer,  # only used to match stop strings
        )
    generated = output[:, inputs.shape[1]:].tolist()
    return [_finish(handle, row, stop_strings) for row in generated]


def _generation_config(
    handle: ModelHandle, max_new_tokens: int, temperature: float, top_p: float, stop_strings: Sequence[str]
) -> Any:
    from transformers import GenerationConfig

    eos_ids = sorted(handle.eos_token_ids)
    pad_id = handle.tokenizer.pad_token_id
    # Neutral values set explicitly: generate() fills unset fields from the model's generation
    # config and then from global defaults (top_k=50), which would change the distribution.
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0, "min_p": 0.0, "typical_p": 1.0}
        if temperature > 0
        else {"do_sample": False}
    )
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        eos_token_id=eos_ids,
        stop_strings=list(stop_strings) or None,
        pad_token_id=pad_id if pad_id is not None else eos_ids[0],
        **sampling,
    )


def _cuda_devices(handle: ModelHandle) -> list[int]:
    device = handle.device
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else 0]


def _finish(handle: ModelHandle, row: list[int], stop_strings: Sequence[str]) -> Sample:
    """Cut one generated row at its first end token or stop string, whichever comes first."""
    eos_at = next((i for i, token in enumerate(row) if token in handle.eos_token_ids), None)
    ids = row if eos_at is None else row[:eos_at]
    text = handle.decode(ids)
    stop_end = first_stop_end(text, stop_strings)
    if stop_end is not None:
        kept = tokens_covering(handle, ids, text[:stop_end])
        return Sample(tuple(ids[:kept]), text[:stop_end], "stop")
    return Sample(tuple(ids), text, "length" if eos_at is None else "eos")
