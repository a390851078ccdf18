"""The local rollout engine: shared-prefix batched sampling with a Hugging Face model.

How it is fast:
* Each group of prompts is encoded once: where prompts nest (sentence i's prefix inside sentence i+1's, the
  usual case when resampling a trace), or share all but their last `max_tail` tokens (forced-answer prompts:
  each prefix + the same suffix; closing prompts: a prefix + a rollout + the closing text), the longest one
  is encoded and the others take the part they share from its cache.
* That cache is held once, however many rows continue it, and each step's attention reads it once for all
  rows (`models.kvcache`): decoding a small model is bound by memory reads, and a shared prefix is most of
  what would otherwise be read once per row.
* A batch holds rows of several requests of one group (black-box scoring asks for few rollouts of many
  prompts; more rows per step cost little). Each row's own prompt tokens beyond its shared part run in one
  batched forward, left-padded, once per distinct prompt (`models.rowbatch`); masks and position ids make
  every row see exactly its own prompt. Rows that finish (EOS, stop string, boxed answer, budget) are dropped.

How it stays reproducible: within a group, the requests' full index ranges, in request order, are cut into
fixed *units* of `batch_size` rows (the last rows of one request and the first of the next may share a
unit), whose make-up depends only on the request list — never on what a store already holds or which
indices are asked for — and every row draws its randomness from its own generator seeded with
`rollout_seed(request.seed, k)`. So the same request list, `batch_size` and machine (thread count) give
bit-identical rollouts, and a resumed job recomputes whole units exactly as an uninterrupted one would. A
different request list, `batch_size` or `max_tail` changes which rows share a unit, which can change a
rollout's floats in the last bits (and, rarely, a sampled token where two are near-tied); each rollout is
still a sample of its own prompt's distribution.
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
from anchors.rollouts.nesting import common_prefix_length, nesting_groups
from anchors.rollouts.stops import StopRule, tokens_covering

if TYPE_CHECKING:
    import torch
    from jaxtyping import Float, Int

    from anchors.models import ModelHandle

ENGINE_VERSION = 2  # bump when a change alters which tokens a seed gives (2: shared-prefix attention, tails run at once)
NUCLEUS_CANDIDATES = 256
MAX_TAIL = 1024


@dataclass
class _Row:
    """One rollout being decoded: rollout `index` of request `request` (a position in the request list)."""

    request: int
    index: int
    seed: int
    prompt: tuple[int, ...]
    shared: int  # leading prompt tokens taken from the group's cache; the rest are run with the batch
    rule: StopRule
    budget: int  # most new tokens
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    text: str | None = None  # set when a stop rule cut it


class LocalEngine:
    """Implements `Sampler` on a loaded model (any device, fp32 / bf16)."""

    def __init__(self, handle: ModelHandle, *, batch_size: int = 32, prefill_chunk: int = 1024,
                 share_nested: bool = True, max_tail: int = MAX_TAIL) -> None:
        """`max_tail`: a prompt joins a longer one's group when at most this many of its last tokens differ
        (they are run with its batch, after the shared part; a group of its own would run all of its tokens)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.handle = handle
        self.batch_size = batch_size
        self.prefill_chunk = prefill_chunk
        self.share_nested = share_nested
        self.max_tail = max_tail

    @cached_property
    def identity(self) -> str:
        """Model name, a fingerprint of its weights, dtype and device kind: what decides the tokens."""
        handle = self.handle
        dtype = str(handle.dtype).removeprefix("torch.")
        return f"hf:{handle.name}@{weights_fingerprint(handle.path)}:{dtype}:{handle.device.type}"

    def provenance(self) -> dict[str, object]:
        import torch
        import transformers

        from anchors.models.kvcache import ATTENTION_NAME

        return {"engine": "anchors.local", "engine_version": ENGINE_VERSION, "batch_size": self.batch_size,
                "attention": ATTENTION_NAME,
                "torch": torch.__version__, "transformers": transformers.__version__,
                "threads": torch.get_num_threads(), "model_source": self.handle.source}

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        import torch

        if self.handle.is_bridged:
            # Measured: after the bridge boots, plain forwards give the same logits but the engine's rollouts
            # are garbage (the bridge's attention ignores the shared-prefix attention and its cache layout).
            raise RuntimeError(f"{self.handle.name}: this model was wrapped by the TransformerLens bridge (a white-box "
                               "method ran on it), which bypasses the engine's attention; sample before the white-box "
                               "methods, or on a second handle (anchors.load_model)")

        from anchors.models.kvcache import encode_prefix, fast_attention

        prompts = [self._prompt_ids(r) for r in requests]
        wanted = [_checked_indices(r) for r in requests]
        groups = nesting_groups(prompts, self.max_tail) if self.share_nested else [[i] for i in range(len(prompts))]
        for group in groups:
            if not any(wanted[i] for i in group):
                continue
            # The group's longest prompt is encoded even when only shorter ones are wanted: the cache a unit
            # starts from must not depend on what a store already holds. (Attention is switched per group,
            # never across a `yield`, so the caller may use the handle's eager attention in between.)
            with torch.inference_mode(), fast_attention(self.handle):
                kv = encode_prefix(self.handle, prompts[group[0]][:-1], self.prefill_chunk)
            for unit in self._units(requests, sorted(group)):
                if any(k in wanted[i] for i, k in unit):
                    rows = [self._row(requests[i], i, k, prompts[i], prompts[group[0]], params) for i, k in unit]
                    elapsed = self._decode(kv, rows, params)
                    yield from (self._rollout(requests[row.request], row, elapsed / len(rows), params.logprobs)
                                for row in rows if row.index in wanted[row.request])

    # -- planning -------------------------------------------------------------------------------------

    def _prompt_ids(self, request: PrefixRequest) -> tuple[int, ...]:
        ids = request.prompt_ids if request.prompt_ids is not None else tuple(self.handle.encode_text_prompt(request.prompt_text))
        if not ids:
            raise InputError(f"request {request.key!r}: the prompt is empty (no tokens)")
        if len(ids) >= self.handle.context_length:
            raise InputError(f"request {request.key!r}: the prompt has {len(ids)} tokens but {self.handle.name} "
                             f"takes at most {self.handle.context_length}; shorten the prefix or use a longer-context model")
        return tuple(ids)

    def _units(self, requests: Sequence[PrefixRequest], members: list[int]) -> Iterator[list[tuple[int, int]]]:
        """(request, rollout index) rows of a group, all indices of each request in request order, cut every
        `batch_size` rows: the cut depends on the request list alone, not on which indices are wanted."""
        slots = [(i, k) for i in members for k in range(requests[i].n)]
        for start in range(0, len(slots), self.batch_size):
            yield slots[start:start + self.batch_size]

    def _row(self, request: PrefixRequest, position: int, index: int, prompt: tuple[int, ...],
             root: tuple[int, ...], params: SamplingParams) -> _Row:
        rule = StopRule.for_prompt(request.prompt_text, params.stop, params.stop_after_boxed_answer,
                                   self.handle.template.think_open, self.handle.template.think_close)
        budget = min(params.max_new_tokens, self.handle.context_length - len(prompt))
        shared = min(common_prefix_length(prompt, root), len(prompt) - 1)
        return _Row(position, index, rollout_seed(request.seed, index), prompt, shared, rule, budget)

    # -- model work -----------------------------------------------------------------------------------

    def _decode(self, kv: list[Any], rows: list[_Row], params: SamplingParams) -> float:
        """Sample every row to its end; returns the seconds it took."""
        import torch

        from anchors.models.kvcache import sharing_prefix
        from anchors.models.rowbatch import RowBatch

        began = time.perf_counter()
        with torch.inference_mode(), sharing_prefix(self.handle):
            batch = RowBatch(self.handle, kv, [row.shared for row in rows], [row.prompt[row.shared:] for row in rows],
                             max(row.budget for row in rows), self.prefill_chunk)
            self._decode_rows(batch, rows, params)
        return time.perf_counter() - began

    def _decode_rows(self, batch: Any, rows: list[_Row], params: SamplingParams) -> None:
        import torch

        # Row j's k-th sampled token is drawn with its own k-th uniform.
        uniforms = torch.zeros(len(rows), max(max(row.budget, 1) for row in rows), dtype=torch.float64)
        for j, row in enumerate(rows):
            uniforms[j, :max(row.budget, 1)] = _uniforms(row.seed, row.budget)
        active = list(range(len(rows)))
        logits = batch.start()
        for step in range(uniforms.shape[1]):
            chosen, logprobs = choose_tokens(logits.float(), params, uniforms[active, step], params.logprobs)
            for j, row_index in enumerate(active):
                self._advance(rows[row_index], int(chosen[j]), None if logprobs is None else float(logprobs[j]))
            keep = [j for j, row_index in enumerate(active) if rows[row_index].finish is None]
            if not keep:
                break
            if len(keep) < len(active):
                kept = torch.tensor(keep)
                batch.keep(kept)
                chosen = chosen[kept]
            active = [active[j] for j in keep]
            logits = batch.step(chosen)

    def _advance(self, row: _Row, token: int, logprob: float | None) -> None:
        if token in self.handle.eos_token_ids:
            row.finish = "eos"
            return
        row.tokens.append(token)
        if logprob is not None:
            row.logprobs.append(logprob)
        if row.rule.active and self._may_stop(token, row.rule):
            text = self.handle.decode(row.tokens)
            end = row.rule.end(text)
            if end is not None:
                row.finish, row.text = "stop", text[:end]
                return
        if len(row.tokens) >= row.budget:
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

    def _rollout(self, request: PrefixRequest, row: _Row, elapsed: float, with_logprobs: bool) -> Rollout:
        tokens = row.tokens
        if row.text is None:
            text = self.handle.decode(tokens)
        else:
            text = row.text
            tokens = tokens[:tokens_covering(self.handle, tokens, text)]
        return Rollout(key=request.key, index=row.index, seed=row.seed, text=text, token_ids=tokens,
                       finish_reason=row.finish or "length", prompt_tokens=len(row.prompt), completion_tokens=len(tokens),
                       logprobs=row.logprobs[:len(tokens)] if with_logprobs else None, elapsed_s=elapsed)


def _checked_indices(request: PrefixRequest) -> frozenset[int]:
    wanted = frozenset(request.wanted_indices())
    if any(k >= request.n or k < 0 for k in wanted):
        raise ValueError(f"request {request.key!r}: indices must lie in range(n={request.n})")
    return wanted


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
    wide = (probs.sum(dim=-1) < top_p).cpu()  # the one transfer deciding the paths (each sync stalls a GPU)
    chosen = torch.empty(scaled.shape[0], dtype=torch.long, device=scaled.device)
    narrow_rows, wide_rows = torch.nonzero(~wide).view(-1), torch.nonzero(wide).view(-1)
    if len(narrow_rows):
        at = narrow_rows.to(scaled.device)
        chosen[at] = _pick(probs[at], order[at], top_p, uniforms[narrow_rows])
    if len(wide_rows):
        at = wide_rows.to(scaled.device)
        ordered, full_order = torch.sort(scaled[at], dim=-1, descending=True, stable=True)
        chosen[at] = _pick(torch.softmax(ordered, dim=-1), full_order, top_p, uniforms[wide_rows])
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
