"""Teacher-forced log-probabilities of a text under a model: how likely the model was to write it (on-policyness).

`continuation_logprobs(handle, prompt, text)` runs the prompt (one BOS, as the sampler gives it) followed by the
text's tokens (encoded on their own, without special tokens, as generated tokens follow a prompt) and returns the
log-probability of each of the text's tokens given everything before it, at temperature 1: the same quantity the
local engine records for the tokens it samples (`SamplingParams.logprobs`), so a sampled sentence and a
hand-written one are measured alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anchors.models.handle import ModelHandle


def continuation_logprobs(handle: ModelHandle, prompt: str, text: str) -> list[float]:
    """ln p(token_k | prompt, tokens before k) for every token of `text` (an empty text gives [])."""
    import torch

    prompt_ids = handle.encode_text_prompt(prompt)
    text_ids = handle.encode(text)
    if not text_ids:
        return []
    ids = torch.tensor([prompt_ids + text_ids], device=handle.device)
    with torch.no_grad():
        logits = handle.hf_model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    chosen = torch.tensor(text_ids, device=logits.device).view(-1, 1)
    return torch.log_softmax(logits, dim=-1).gather(-1, chosen).view(-1).cpu().tolist()
