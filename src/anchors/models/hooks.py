"""Thin hook adapters for the white-box methods: run a model in query chunks with TransformerLens hooks.

The model is the Hugging Face model of a `ModelHandle`, wrapped in place by its TransformerLens
`TransformerBridge` (so the bridge's attention, which exposes `hook_attn_scores` and `hook_pattern`, runs
inside ordinary HF forward calls). `HookedModel.run` feeds a token sequence through the decoder in chunks
of queries on top of a `DynamicCache`: each chunk's attention is `[batch, head, chunk, keys so far]`, so
no full token x token pattern ever exists, and a cache built by one run can seed the next (the KV-reuse
of attention suppression and patching). Hooks added here are removed when the run ends, error or not.

Hook callbacks get `(layer, query_offset, activation)`: `query_offset` is the absolute position of the
chunk's first query, so a callback can tell which tokens it is looking at. A callback may return a new
activation (masking, patching) or None (reading).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from anchors.errors import AnchorsError
from anchors.models._errors import one_line_summary
from anchors.models.handle import ModelHandle

if TYPE_CHECKING:
    import torch

HookPoint = Literal["attn_scores", "pattern", "resid_pre", "attn_out", "mlp_out", "head_out"]
# TransformerLens hook names (the same on every architecture the bridge supports).
HOOK_NAMES: dict[str, str] = {
    "attn_scores": "blocks.{layer}.attn.hook_attn_scores",  # pre-softmax [batch, head, q, k]
    "pattern": "blocks.{layer}.attn.hook_pattern",  # post-softmax [batch, head, q, k]
    "resid_pre": "blocks.{layer}.hook_resid_pre",  # residual stream entering block [batch, q, d_model]
    "attn_out": "blocks.{layer}.hook_attn_out",  # attention output added to the residual [batch, q, d_model]
    "mlp_out": "blocks.{layer}.hook_mlp_out",  # MLP output added to the residual [batch, q, d_model]
    # each head's attention output before the output projection [batch, q, head, d_head]: head ablation
    "head_out": "blocks.{layer}.attn.o.hook_in",
}
# Queries per chunk by default: this many floats / (heads x keys), i.e. 64 MiB in float32 for one copy of
# one layer's chunk of attention scores (the attention code makes a few such copies).
ATTENTION_CHUNK_ELEMENTS = 2**24
HookFn = Callable[[int, int, "torch.Tensor"], "torch.Tensor | None"]


class UnsupportedModelError(AnchorsError):
    """The model's architecture cannot be run through the white-box hooks."""


@dataclass(frozen=True)
class Hook:
    """Call `fn(layer, query_offset, activation)` at `point` in each of `layers`."""

    point: HookPoint
    layers: Sequence[int]
    fn: HookFn


@dataclass
class RunOutput:
    """What a chunked run leaves: the KV cache (all positions so far) and, if asked, final hidden states."""

    cache: Any  # transformers DynamicCache
    hidden: torch.Tensor | None  # [batch, tok, d_model], after the final norm; None unless keep_hidden


class HookedModel:
    """A `ModelHandle` prepared for hooked, chunked, KV-cached forward passes.

    Construction boots the TransformerLens bridge and checks, on a 3-token input, that every layer's
    attention hooks fire and that decoder + output head reproduce the model's own logits; an
    architecture that fails either check raises `UnsupportedModelError` naming it.
    """

    def __init__(self, handle: ModelHandle) -> None:
        self.handle = handle
        self.bridge = _boot(handle)
        model = handle.hf_model
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        config = model.config.get_text_config()
        self.n_layers = int(config.num_hidden_layers)
        self.n_heads = int(config.num_attention_heads)
        self.architecture = _architecture(handle)
        _check_hook_names(self)
        self._self_check()

    @property
    def device(self) -> torch.device:
        return self.handle.device

    def new_cache(self, prefix: Any | None = None, length: int | None = None, batch: int = 1) -> Any:
        """An empty cache, or one holding a copy of the first `length` positions of `prefix` (which is not
        modified), repeated to `batch` rows when `prefix` has one."""
        cache = _empty_cache(self.handle.hf_model.config)
        if prefix is None or not length:
            return cache
        for index, layer in enumerate(prefix.layers):
            _reserve(cache.layers[index], length)
            cache.layers[index].update(_rows(layer.keys[..., :length, :], batch), _rows(layer.values[..., :length, :], batch))
        return cache

    def run(
        self,
        ids: torch.Tensor,
        *,
        hooks: Sequence[Hook] = (),
        cache: Any | None = None,
        query_chunk: int | None = None,
        keep_hidden: bool = False,
    ) -> RunOutput:
        """Run `ids` ([batch, tok], continuing after whatever `cache` holds) in chunks of `query_chunk` queries."""
        import torch

        cache = self.new_cache() if cache is None else cache
        start = cache.get_seq_length()
        for layer in cache.layers:  # one buffer for the whole run: no copy of the cache per chunk
            _reserve(layer, start + ids.shape[1])
        offset = [start]  # read by the hook wrappers: absolute position of the current chunk's first query
        hidden: list[torch.Tensor] = []
        with self._hooks(hooks, offset), torch.no_grad():
            for lo, hi in _chunks(start, start + ids.shape[1], query_chunk):
                offset[0] = lo
                out = self.decoder(input_ids=ids[:, lo - start : hi - start], past_key_values=cache, use_cache=True)
                if keep_hidden:
                    hidden.append(out.last_hidden_state)
        return RunOutput(cache, torch.cat(hidden, dim=1) if keep_hidden else None)

    def auto_chunk(self, length: int) -> int:
        """Queries per chunk so that one layer's chunk of attention scores stays near 64 MiB (float32)."""
        return max(16, ATTENTION_CHUNK_ELEMENTS // (self.n_heads * max(length, 1)))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Output logits (float32) of final hidden states, e.g. a slice of `RunOutput.hidden`."""
        import torch

        with torch.no_grad():
            return self.head(hidden).float()

    @contextmanager
    def _hooks(self, hooks: Sequence[Hook], offset: list[int]) -> Iterator[None]:
        fwd = [
            (HOOK_NAMES[hook.point].format(layer=layer), functools.partial(_call, hook.fn, layer, offset))
            for hook in hooks
            for layer in hook.layers
        ]
        if not fwd:
            yield
            return
        # bridge.hooks removes exactly the hooks it added when the block exits, also on errors.
        with self.bridge.hooks(fwd_hooks=fwd):
            yield

    def _self_check(self) -> None:
        import torch

        ids = torch.tensor([[1, 2, 3]], device=self.device)
        fired: set[int] = set()
        seen = Hook("pattern", range(self.n_layers), lambda layer, _o, _a: fired.add(layer))
        out = self.run(ids, hooks=[seen], keep_hidden=True)
        if fired != set(range(self.n_layers)):
            raise UnsupportedModelError(
                f"{self.architecture} ({self.handle.name}): the attention pattern hook fired in layers "
                f"{sorted(fired)} of {self.n_layers}; the white-box methods need every layer's attention "
                "reconstructed by TransformerLens (use a Llama/Qwen2/Qwen3/Mistral-style model)"
            )
        with torch.no_grad():
            reference = self.handle.hf_model(ids).logits.float()
        gap = (self.logits(out.hidden) - reference).abs().max().item()
        if not gap <= 1e-3 * max(1.0, reference.abs().max().item()):
            raise UnsupportedModelError(
                f"{self.architecture} ({self.handle.name}): decoder + output head do not reproduce the model's "
                f"logits (max difference {gap:.3g}); its head applies extra steps anchors does not know"
            )


def _chunks(start: int, end: int, step: int | None) -> Iterator[tuple[int, int]]:
    """[lo, hi) query chunks covering [start, end), cut at absolute multiples of `step`: a run resumed from a
    cache then computes each position in the same chunk shapes as a run from scratch (bitwise comparable)."""
    if not step:
        yield start, end
        return
    lo = start
    while lo < end:
        hi = min(end, (lo // step + 1) * step)
        yield lo, hi
        lo = hi


def _empty_cache(config: Any) -> Any:
    """A DynamicCache whose layers keep keys/values in reserved buffers (when every layer is full attention;
    sliding-window layers keep transformers' own behaviour)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [_reserved_layer_class()() for _ in cache.layers]
    return cache


@functools.cache
def _reserved_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A DynamicLayer appending into one buffer reserved up front, instead of concatenating a new tensor
        per chunk: no per-chunk copy of the whole cache, and no heap fragmentation from the freed copies
        (which, on CPU, grew the resident set of an 8k-token run by hundreds of MiB)."""

        def __init__(self) -> None:
            super().__init__()
            self._buffers: tuple[Any, Any] | None = None
            self._length = 0
            self._capacity = 0

        def reserve(self, capacity: int) -> None:
            self._capacity = max(self._capacity, capacity)

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            self.dtype, self.device = key_states.dtype, key_states.device
            self.is_initialized = True

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self._length + key_states.shape[-2]
            keys, values = self._room_for(end, key_states, value_states)
            keys[..., self._length : end, :].copy_(key_states)
            values[..., self._length : end, :].copy_(value_states)
            self._length = end
            self.keys, self.values = keys[..., :end, :], values[..., :end, :]
            return self.keys, self.values

        def _room_for(self, end: int, key_states: Any, value_states: Any) -> tuple[Any, Any]:
            if self._buffers is not None and self._buffers[0].shape[-2] >= end:
                return self._buffers
            old = self._buffers[0].shape[-2] if self._buffers is not None else 0
            size = max(end, self._capacity, 2 * old)
            fresh = tuple(t.new_empty(*t.shape[:-2], size, t.shape[-1]) for t in (key_states, value_states))
            if self._buffers is not None:
                for new, kept in zip(fresh, self._buffers):
                    new[..., : self._length, :].copy_(kept[..., : self._length, :])
            self._buffers = fresh  # type: ignore[assignment]
            return fresh  # type: ignore[return-value]

    return ReservedLayer


def _reserve(layer: Any, capacity: int) -> None:
    if hasattr(layer, "reserve"):
        layer.reserve(capacity)


def _rows(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    return tensor if tensor.shape[0] == batch else tensor.expand(batch, *tensor.shape[1:])


def _call(fn: HookFn, layer: int, offset: list[int], activation: torch.Tensor, hook: Any) -> Any:
    return fn(layer, offset[0], activation)


def _architecture(handle: ModelHandle) -> str:
    names = getattr(handle.hf_model.config, "architectures", None) or [type(handle.hf_model).__name__]
    return str(names[0])


def _boot(handle: ModelHandle) -> Any:
    try:
        return handle.bridge()
    except Exception as error:  # the bridge raises ValueError/KeyError/… for architectures it cannot wrap
        # TransformerLens lists every architecture it knows after the reason: keep the reason only.
        reason = one_line_summary(error).split(" Available architectures")[0][:300]
        raise UnsupportedModelError(
            f"{_architecture(handle)} ({handle.name}): TransformerLens cannot wrap this architecture "
            f"({reason}); the white-box methods need a model the TransformerBridge supports "
            "(e.g. Llama, Qwen2/3, Mistral, Gemma, GPT-2)"
        ) from error


def _check_hook_names(model: HookedModel) -> None:
    names = set(model.bridge.hook_dict)
    missing = [
        HOOK_NAMES[point].format(layer=layer)
        for point in ("attn_scores", "pattern")
        for layer in range(model.n_layers)
        if HOOK_NAMES[point].format(layer=layer) not in names
    ]
    if missing:
        raise UnsupportedModelError(
            f"{model.architecture} ({model.handle.name}): the TransformerLens bridge has no {missing[0]} "
            f"(and {len(missing) - 1} more attention hooks missing); the white-box methods need softmax attention"
        )


def hooked(handle: ModelHandle | HookedModel) -> HookedModel:
    """The `HookedModel` of a handle, built once and cached on it."""
    if isinstance(handle, HookedModel):
        return handle
    cached = getattr(handle, "_hooked", None)
    if cached is None:
        cached = HookedModel(handle)
        handle._hooked = cached  # type: ignore[attr-defined]
    return cached


__all__ = ["HOOK_NAMES", "Hook", "HookPoint", "HookedModel", "RunOutput", "UnsupportedModelError", "hooked"]
