"""KV caches for shared-prefix sampling (the rollout engine's model-side half; transformers stays in models/).

* `encode_prefix`: a prompt's per-layer keys and values, computed once in fixed-size chunks.
* `SharedPrefixCache`: the cache of a batch whose rows all continue one encoded prefix. The prefix's keys and
  values are held once, as views of `encode_prefix`'s tensors (never repeated per row); each row's own tokens
  (the rest of its prompt, then what it samples) go to preallocated per-row buffers, written in place.
* `shared_prefix_attention`: the attention over such a cache: every row's queries meet the one prefix copy in a
  single matmul per key/value head (decoding is bound by memory reads, and the prefix is most of what is read),
  then the row's own keys; one softmax over both, so each row sees exactly prefix + own tokens.
* `sharing_prefix(handle)`: runs a block with that attention switched on (the handle's eager attention, which
  white-box code needs, is restored after).

Masks are additive (0 where a key is seen, -inf where not) over [prefix keys, own keys], one per row and query;
None when every row sees the whole prefix and all of its own keys (the usual one-prompt batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from transformers.cache_utils import DynamicCache, DynamicLayer

if TYPE_CHECKING:
    import torch
    from jaxtyping import Float

    from anchors.models.handle import ModelHandle

# per layer: keys and values, each [1, kv_head, tok, head_dim]
PrefixKV = list[tuple["torch.Tensor", "torch.Tensor"]]

ATTENTION_NAME = "anchors_shared_prefix"
CACHE_KWARG = "anchors_shared_cache"  # how the attention finds the prefix of its layer: a forward keyword


def encode_prefix(handle: ModelHandle, ids: Sequence[int], chunk: int = 1024) -> PrefixKV:
    """Keys and values of `ids` for every layer (empty list for no ids)."""
    import torch

    if not ids:
        return []
    cache = DynamicCache(config=handle.hf_model.config)
    tensor = torch.tensor([list(ids)], dtype=torch.long, device=handle.device)
    for start in range(0, len(ids), chunk):
        handle.hf_model(input_ids=tensor[:, start:start + chunk], past_key_values=cache, use_cache=True,
                        logits_to_keep=1)
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        raise NotImplementedError(f"{handle.name}: sliding-window or linear-attention layers cannot share prefixes "
                                  "(their caches drop old positions)")
    return [(layer.keys, layer.values) for layer in cache.layers]


class SharedPrefixCache(DynamicCache):
    """`prefix[:length]` held once for `rows` rows, plus room for `capacity` tokens of each row's own."""

    def __init__(self, handle: ModelHandle, prefix: PrefixKV, length: int, rows: int, capacity: int) -> None:
        super().__init__(config=handle.hf_model.config)
        layers = handle.hf_model.config.get_text_config().num_hidden_layers
        parts = [(k[:, :, :length], v[:, :, :length]) for k, v in prefix] if length > 0 else [None] * layers
        self.layers = [_RowsLayer(part, rows, capacity) for part in parts]
        self.prefix_length = length

    @property
    def rows(self) -> int:
        return self.layers[0].rows

    def own_length(self) -> int:
        """Tokens written to every row's own buffer so far."""
        return self.layers[0].length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep (or repeat) rows: row j of the result is row indices[j]."""
        for layer in self.layers:
            layer.select(indices)

    def forward_inputs(self) -> dict[str, Any]:
        """What the model's forward needs besides ids, positions and the mask to use this cache."""
        return {"past_key_values": self, "use_cache": True, CACHE_KWARG: self}


class _RowsLayer(DynamicLayer):
    """One layer: the prefix's keys and values (shared, [1, kv_head, tok, dim], or None) and every row's own
    ([row, kv_head, capacity, dim] buffers, allocated at the first write)."""

    def __init__(self, prefix: tuple[torch.Tensor, torch.Tensor] | None, rows: int, capacity: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.rows, self.capacity, self.length = rows, capacity, 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if self._keys is None:
            rows, heads, _, dim = key_states.shape
            self._keys = key_states.new_empty((rows, heads, self.capacity, dim))
            self._values = value_states.new_empty((rows, heads, self.capacity, value_states.shape[-1]))
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded")
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states  # type: ignore[index]
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]  # type: ignore[index]
        return self.keys, self.values

    def select(self, indices: torch.Tensor) -> None:
        self.rows = len(indices)
        if self._keys is not None:
            self._keys = _take_rows(self._keys, indices, self.length)
            self._values = _take_rows(self._values, indices, self.length)  # type: ignore[arg-type]
            self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]

    def get_seq_length(self) -> int:
        return (0 if self.prefix is None else self.prefix[0].shape[-2]) + self.length


def _take_rows(buffer: torch.Tensor, indices: torch.Tensor, filled: int) -> torch.Tensor:
    """Rows `indices` of `buffer`, same capacity; only the filled positions are copied."""
    out = buffer.new_empty((len(indices), *buffer.shape[1:]))
    out[:, :, :filled] = buffer[indices, :, :filled]
    return out


def shared_prefix_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                            **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention of `query` [row, head, q, dim] over the layer's shared prefix and each row's own `key`/`value`
    [row, kv_head, own, dim]; `attention_mask` additive, [row, 1, q, prefix + own], or None (all seen).

    Grouped-query heads are folded into the query axis, so no key/value head is ever repeated. Scores are
    computed in the model's dtype and normalised in float32, as the eager attention does."""
    import torch

    _refuse_unsupported(kwargs)
    layer: _RowsLayer = kwargs[CACHE_KWARG].layers[module.layer_idx]
    rows, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    queries = query.reshape(rows, kv_heads, heads // kv_heads * q_len, dim)
    scores = torch.matmul(queries, key.transpose(-1, -2))
    if layer.prefix is not None:
        scores = torch.cat([_prefix_product(queries, layer.prefix[0].transpose(-1, -2)), scores], dim=-1)
    scores = scores * (scaling if scaling is not None else dim ** -0.5)
    if attention_mask is not None:
        scores = (scores.view(rows, kv_heads, heads // kv_heads, q_len, -1) + attention_mask[:, :, None]).flatten(2, 3)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    seen = 0 if layer.prefix is None else layer.prefix[0].shape[-2]
    out = torch.matmul(probs[..., seen:], value)
    if layer.prefix is not None:
        out = out + _prefix_product(probs[..., :seen], layer.prefix[1])
    return out.view(rows, heads, q_len, -1).transpose(1, 2).contiguous(), None


def _prefix_product(left: Float[torch.Tensor, "row kv_head q a"], right: torch.Tensor) -> torch.Tensor:
    """`left` [row, kv_head, q, a] times the shared `right` [1, kv_head, a, b], as one matmul per head over all
    rows' queries (the prefix is read once, not once per row): [row, kv_head, q, b]."""
    rows, kv_heads, q_len, inner = left.shape
    stacked = left.transpose(0, 1).reshape(kv_heads, rows * q_len, inner)
    return (stacked @ right[0]).view(kv_heads, rows, q_len, -1).transpose(0, 1)


def _refuse_unsupported(kwargs: dict[str, Any]) -> None:
    for name in ("sliding_window", "softcap", "s_aux"):
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"shared-prefix sampling does not support attention with {name}")


@contextlib.contextmanager
def sharing_prefix(handle: ModelHandle) -> Iterator[None]:
    """Run the block with `shared_prefix_attention` as the model's attention, then restore its own."""
    from transformers import AttentionInterface

    if ATTENTION_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)
    model = handle.hf_model
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION_NAME)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@contextlib.contextmanager
def fast_attention(handle: ModelHandle, implementation: str = "sdpa") -> Iterator[None]:
    """Run the block with another attention implementation (sdpa: prefixes are encoded with it), then restore it."""
    model = handle.hf_model
    before = model.config._attn_implementation
    if implementation == before:
        yield
        return
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(before)
