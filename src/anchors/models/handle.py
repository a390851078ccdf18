"""ModelHandle: one loaded model with its tokenizer, prompt template and (on demand) its
TransformerLens bridge."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchors.models.templates import PromptTemplate

if TYPE_CHECKING:
    import torch

# End-of-turn / end-of-document markers of the common chat formats. Any of them present in a
# tokenizer's vocabulary ends a sample even when the generation config lists only one. (Not
# gpt-oss's "<|end|>": it closes the analysis channel, after which the final answer follows.)
KNOWN_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<｜end▁of▁sentence｜>", "<|eot_id|>", "<|end_of_text|>")


@dataclass(eq=False)
class ModelHandle:
    """A causal LM ready for sampling and white-box analysis.

    `hf_model` is in eval mode with eager attention, so attention hooks see real patterns.
    `bridge()` wraps that same model in place in a TransformerLens `TransformerBridge`: both
    give identical logits on plain forwards, but they share modules (the rollout engine, whose attention
    the bridge bypasses, refuses a wrapped model: sample first, or on a second handle), so hooks attached through
    the bridge also fire in `hf_model` calls until removed (use `bridge.hooks(...)` contexts
    or `bridge.reset_hooks()`). Load a second handle for an untouched reference model.
    """

    name: str
    hf_model: Any
    tokenizer: Any
    template: PromptTemplate
    device: torch.device
    dtype: torch.dtype
    source: str
    path: Path
    n_layers: int
    n_heads: int
    context_length: int
    _bridge: Any = field(default=None, repr=False)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text` (no BOS unless asked: prompts carry their own)."""
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`, special tokens kept by default so text and ids stay in step."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def encode_text_prompt(self, text: str) -> list[int]:
        """Token ids of an already rendered prompt, with exactly one BOS if the model uses one: the prompt's own
        BOS when its template wrote it, else the tokenizer's (whichever template rendered the text)."""
        ids = self.encode(text)
        bos = self.bos_token_id
        return ids if bos is None or ids[:1] == [bos] else [bos, *ids]

    @cached_property
    def bos_token_id(self) -> int | None:
        """The BOS id the tokenizer puts first by itself (None: the model uses none, e.g. Qwen2, ChatML)."""
        with_special = self.encode("a", add_special_tokens=True)
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None and with_special[:1] == [bos] else None

    def encode_prompt(self, problem: str, thinking_prefix: str = "") -> list[int]:
        """Token ids of `template.render(problem, thinking_prefix)`, with exactly one BOS if the model uses one."""
        text = self.template.render(problem, thinking_prefix)
        return self.encode(text, add_special_tokens=self.template.add_special_tokens)

    @cached_property
    def eos_token_ids(self) -> frozenset[int]:
        """Every token id that ends a sample: generation config, tokenizer EOS, and known end markers."""
        ids = set(_as_id_list(getattr(self.hf_model.generation_config, "eos_token_id", None)))
        ids |= set(_as_id_list(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids |= {vocab[token] for token in KNOWN_END_TOKENS if token in vocab}
        return frozenset(ids)

    @property
    def is_bridged(self) -> bool:
        """Whether `bridge()` has wrapped `hf_model` (the sampling engine then refuses it)."""
        return self._bridge is not None

    def bridge(self) -> Any:
        """The TransformerLens `TransformerBridge` around `hf_model`, booted on first call (~0.05–1 s)."""
        if self._bridge is None:
            self._bridge = _boot_bridge(self)
        return self._bridge

    def __repr__(self) -> str:
        return (
            f"ModelHandle(name={self.name!r}, template={self.template.name!r}, device={str(self.device)!r}, "
            f"dtype={str(self.dtype)!r}, n_layers={self.n_layers}, n_heads={self.n_heads}, source={self.source!r})"
        )


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _boot_bridge(handle: ModelHandle) -> Any:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    # The bridge gets its own tokenizer loaded from disk: booting re-creates the tokenizer from its
    # saved files (to add a BOS) and sets pad/BOS tokens on it, which must not leak into ours.
    bridge_tokenizer = AutoTokenizer.from_pretrained(handle.path)
    return TransformerBridge.boot_transformers(
        str(handle.path),
        hf_model=handle.hf_model,
        tokenizer=bridge_tokenizer,
        device=handle.device,
        dtype=handle.dtype,
    )
