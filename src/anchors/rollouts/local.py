"""The local rollout engine: shared-prefix batched sampling with a Hugging Face model.

How it is fast:
* Each prompt's KV cache is computed once and repeated for the rollouts sampled from it (`DynamicCache` +
  `batch_repeat_interleave`); where prompts nest (sentence i's prefix inside sentence i+1's, the usual case
  when resampling a trace), the longest one is encoded once and the others slice its cache.
* All rows of a batch share one prompt, so they stay aligned: no padding and no attention mask; rows that
  finish (EOS, stop string, boxed answer, budget) are dropped from the batch at once.

How it stays reproducible: work is cut into fixed *units* (indices [0, B), [B, 2B), … of one request, B =
`batch_size`) whose make-up never depends on what a store already holds, and every row draws its randomness
from its own generator seeded with `rollout_seed(request.seed, k)`. A resumed job recomputes a unit exactly as
an uninterrupted one would, bit for bit (on the same machine and thread count).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from anchors.errors import InputError
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed
from anchors.rollouts.fingerprint import weights_fingerprint
from anchors.rollouts.nesting import nesting_groups
from anchors.rollouts.stops import StopRule

if TYPE_CHECKING:
    import torch
    from jaxtyping import Float, Int

    from anchors.models import ModelHandle

ENGINE_VERSION = 1  # bump when a change alters which tokens a seed gives
NUCLEUS_CANDIDATES = 256


@dataclass
class _Row:
    """One rollout being decoded."""

    index: int
    seed: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    text: str | None = None  # set when a stop rule cut it


class LocalEngine:
    """Implements `Sampler` on a loaded model (any device, fp32 / bf16)."""

    def __init__(self, handle: ModelHandle, *, batch_size: int = 32, prefill_chunk: int = 1024,
                 share_nested: bool = True, attention: str | None = "sdpa") -> None:
        """`attention`: the implementation used while sampling ("sdpa", or None for the model's own; the
        handle's eager attention is restored afterwards for white-box use)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.handle = handle
        self.batch_size = batch_size
        self.prefill_chunk = prefill_chunk
        self.share_nested = share_nested
        self.attention = attention

    @cached_property
    def identity(self) -> str:
        """Model name, a fingerprint of its weights, dtype and device kind: what decides the tokens."""
        handle = self.handle
        dtype = str(handle.dtype).removeprefix("torch.")
        return f"hf:{handle.name}@{weights_fingerprint(handle.path)}:{dtype}:{handle.device.type}"

    def provenance(self) -> dict[str, object]:
        import torch
        import transformers

        return {"engine": "anchors.local", "engine_version": ENGINE_VERSION, "batch_size": self.batch_size,
                "attention": self.attention or self.handle.hf_model.config._attn_implementation,
                "torch": torch.__version__, "transformers": transformers.__version__,
                "threads": torch.get_num_threads(), "model_source": self.handle.source}

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        import torch

        from anchors.models.kvcache import encode_prefix, fast_attention

        prompts = [self._prompt_ids(r) for r in requests]
        groups = nesting_groups(prompts) if self.share_nested else [[i] for i in range(len(prompts))]
        for group in groups:
            if not any(requests[i].wanted_indices() for i in group):
                continue
            # The group's longest prompt is encoded even when only shorter ones are wanted: the cache a unit
            # starts from must not depend on what a store already holds. (Attention is switched per group,
            # never across a `yield`, so the caller may use the handle's eager attention in between.)
            with torch.inference_mode(), fast_attention(self.handle, self.attention):
                kv = encode_prefix(self.handle, prompts[group[0]][:-1], self.prefill_chunk)
            for i in group:
                yield from self._sample_request(requests[i], prompts[i], kv, params)

    # -- planning -------------------------------------------------------------------------------------

    def _prompt_ids(self, request: PrefixRequest) -> tuple[int, ...]:
        ids = request.prompt_ids if request.prompt_ids is not None else tuple(self.handle.encode(request.prompt_text))
        if not ids:
            raise InputError(f"request {request.key!r}: the prompt is empty (no tokens)")
        if len(ids) >= self.handle.context_length:
            raise InputError(f"request {request.key!r}: the prompt has {len(ids)} tokens but {self.handle.name} "
                             f"takes at most {self.handle.context_length}; shorten the prefix or use a longer-context model")
        return tuple(ids)

    def _sample_request(self, request: PrefixRequest, ids: tuple[int, ...], kv: list[Any],
                        params: SamplingParams) -> Iterator[Rollout]:
        wanted = set(request.wanted_indices())
        if any(k >= request.n or k < 0 for k in wanted):
            raise ValueError(f"request {request.key!r}: indices must lie in range(n={request.n})")
        rule = StopRule.for_prompt(request.prompt_text, params.stop, params.stop_after_boxed_answer,
                                   self.handle.template.think_open, self.handle.template.think_close)
        for start in range(0, request.n, self.batch_size):
            unit = range(start, min(start + self.batch_size, request.n))
            if wanted.intersection(unit):
                rows = [_Row(k, rollout_seed(request.seed, k)) for k in unit]
                elapsed = self._decode(ids, kv, rows, params, rule)
                yield from (self._rollout(request, ids, row, elapsed / len(rows), params.logprobs)
                            for row in rows if row.index in wanted)

    # -- model work -----------------------------------------------------------------------------------

    def _decode(self, ids: tuple[int, ...], kv: list[Any], rows: list[_Row], params: SamplingParams,
                rule: StopRule) -> float:
        """Sample every row to its end; returns the seconds it took."""
        import torch

        from anchors.models.kvcache import fast_attention, repeated_cache

        began = time.perf_counter()
        budget = min(params.max_new_tokens, self.handle.context_length - len(ids))
        with torch.inference_mode(), fast_attention(self.handle, self.attention):
            cache = repeated_cache(self.handle, kv, len(ids) - 1, len(rows), len(ids) + budget)
            self._decode_rows(ids, cache, rows, params, rule, budget)
        return time.perf_counter() - began

    def _decode_rows(self, ids: tuple[int, ...], cache: Any, rows: list[_Row], params: SamplingParams,
                     rule: StopRule, budget: int) -> None:
        import torch

        uniforms = torch.stack([_uniforms(row.seed, budget) for row in rows])
        active = list(range(len(rows)))
        inputs = torch.full((len(rows), 1), ids[-1], dtype=torch.long, device=self.handle.device)
        for step in range(budget):
            logits = self.handle.hf_model(input_ids=inputs, past_key_values=cache, use_cache=True).logits[:, -1, :]
            chosen, logprobs = choose_tokens(logits.float(), params, uniforms[active, step], params.logprobs)
            for j, row_index in enumerate(active):
                self._advance(rows[row_index], int(chosen[j]), None if logprobs is None else float(logprobs[j]),
                              rule, budget)
            keep = [j for j, row_index in enumerate(active) if rows[row_index].finish is None]
            if not keep:
                break
            if len(keep) < len(active):
                cache.batch_select_indices(torch.tensor(keep, device=self.handle.device))
            active = [active[j] for j in keep]
            inputs = chosen[keep].view(-1, 1).to(self.handle.device)

    def _advance(self, row: _Row, token: int, logprob: float | None, rule: StopRule, budget: int) -> None:
        if token in self.handle.eos_token_ids:
            row.finish = "eos"
            return
        row.tokens.append(token)
        if logprob is not None:
            row.logprobs.append(logprob)
        if rule.active and self._may_stop(token, rule):
            text = self.handle.decode(row.tokens)
            end = rule.end(text)
            if end is not None:
                row.finish, row.text = "stop", text[:end]
                return
        if len(row.tokens) >= budget:
            row.finish = "length"

    def _may_stop(self, token: int, rule: StopRule) -> bool:
        # Decoding a row's text at every step costs too much on long rollouts; a stop can only complete at a
        # token whose text holds the stop's last character (or a partial UTF-8 byte, shown as U+FFFD).
        piece = self._pieces[token] if token < len(self._pieces) else "\ufffd"
        return "\ufffd" in piece or any(c in piece for c in rule.trigger_chars())

    @cached_property
    def _pieces(self) -> list[str]:
        tokenizer = self.handle.tokenizer
        return tokenizer.batch_decode([[i] for i in range(len(tokenizer))])

    def _rollout(self, request: PrefixRequest, ids: tuple[int, ...], row: _Row, elapsed: float,
                 with_logprobs: bool) -> Rollout:
        tokens = row.tokens
        if row.text is None:
            text = self.handle.decode(tokens)
        else:
            text = row.text
            tokens = tokens[:_tokens_covering(self.handle, tokens, text)]
        return Rollout(key=request.key, index=row.index, seed=row.seed, text=text, token_ids=tokens,
                       finish_reason=row.finish or "length", prompt_tokens=len(ids), completion_tokens=len(tokens),
                       logprobs=row.logprobs[:len(tokens)] if with_logprobs else None, elapsed_s=elapsed)


def _uniforms(seed: int, count: int) -> torch.Tensor:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(max(count, 1), generator=generator, dtype=torch.float64)


def choose_tokens(logits: Float[torch.Tensor, "rollout vocab"], params: SamplingParams,
                  uniforms: Float[torch.Tensor, " rollout"], want_logprobs: bool = False,
                  ) -> tuple[Int[torch.Tensor, " rollout"], Float[torch.Tensor, " rollout"] | None]:
    """One token per row: temperature + nucleus (top-p) sampling by inverse CDF with the row's uniform.

    Row-wise only (top-k, sort, cumsum, search), so a row's token never depends on the other rows. Temperature
    0 is greedy. Logprobs are of the chosen token under the model's unmodified distribution.
    """
    import torch

    logprobs = torch.log_softmax(logits, dim=-1) if want_logprobs else None
    if params.temperature <= 0:
        chosen = logits.argmax(dim=-1)
    elif params.top_p >= 1:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        chosen = _pick(probs, torch.arange(probs.shape[-1], device=probs.device).expand_as(probs), 1.0, uniforms)
    else:
        chosen = _nucleus(logits / params.temperature, params.top_p, uniforms)
    chosen = chosen.cpu()
    if logprobs is not None:
        logprobs = logprobs.gather(-1, chosen.view(-1, 1).to(logprobs.device)).view(-1).cpu()
    return chosen, logprobs


def _nucleus(scaled: torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Sorting a whole vocabulary per row per step costs as much as a small model's forward pass; the
    nucleus almost always lies among the top NUCLEUS_CANDIDATES tokens, so only rows where it does not
    (flat distributions) take the full sort. Which path a row takes depends on that row alone."""
    import torch

    values, order = torch.topk(scaled, min(NUCLEUS_CANDIDATES, scaled.shape[-1]), dim=-1)
    probs = torch.exp(values - torch.logsumexp(scaled, dim=-1, keepdim=True))
    wide = probs.sum(dim=-1) < top_p
    chosen = torch.empty(scaled.shape[0], dtype=torch.long, device=scaled.device)
    narrow = ~wide
    if narrow.any():
        chosen[narrow] = _pick(probs[narrow], order[narrow], top_p, uniforms[narrow.cpu()])
    if wide.any():
        ordered, full_order = torch.sort(scaled[wide], dim=-1, descending=True, stable=True)
        chosen[wide] = _pick(torch.softmax(ordered, dim=-1), full_order, top_p, uniforms[wide.cpu()])
    return chosen


def _pick(probs: torch.Tensor, order: torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from `probs` (sorted high to low when top_p < 1), kept to the top-p nucleus: the
    smallest top set whose mass reaches top_p (the top token always stays), as HF's warper keeps."""
    import torch

    if top_p < 1:
        probs = probs * ((probs.cumsum(dim=-1) - probs) < top_p)
    cdf = probs.double().cumsum(dim=-1)
    target = uniforms.to(cdf.device).view(-1, 1) * cdf[:, -1:]
    position = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[-1] - 1)
    return order.gather(-1, position).view(-1)


def _tokens_covering(handle: ModelHandle, ids: list[int], wanted: str) -> int:
    """Fewest leading tokens whose decoding starts with `wanted` (binary search: decodings grow)."""
    low, high = 0, len(ids)
    while low < high:
        middle = (low + high) // 2
        if handle.decode(ids[:middle]).startswith(wanted):
            high = middle
        else:
            low = middle + 1
    return high
