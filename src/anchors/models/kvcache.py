"""KV caches for shared-prefix sampling (the rollout engine's model-side half; transformers stays in models/).

* `encode_prefix`: a prompt's per-layer keys and values, computed once in fixed-size chunks.
* `repeated_cache`: a cache holding the first `length` positions of such a prefix, repeated for `rows` rows,
  with room for `capacity` positions: new keys and values are written in place instead of being concatenated
  (`DynamicCache` copies the whole cache at every step), and rows can be dropped (`batch_select_indices`).
* `fast_attention`: sdpa instead of the handle's eager attention while sampling (eager copies the key/value
  heads for grouped-query attention at every step; white-box code needs eager, so it is restored after).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from transformers.cache_utils import DynamicLayer

if TYPE_CHECKING:
    import torch

    from anchors.models.handle import ModelHandle

# per layer: keys and values, each [1, kv_head, tok, head_dim]
PrefixKV = list[tuple["torch.Tensor", "torch.Tensor"]]


def encode_prefix(handle: ModelHandle, ids: Sequence[int], chunk: int = 1024) -> PrefixKV:
    """Keys and values of `ids` for every layer (empty list for no ids)."""
    import torch
    from transformers import DynamicCache

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


def repeated_cache(handle: ModelHandle, prefix: PrefixKV, length: int, rows: int, capacity: int) -> Any:
    """A cache of `prefix[:length]` for `rows` rows, with room for `capacity` positions in all."""
    from transformers import DynamicCache

    cache = DynamicCache(config=handle.hf_model.config)
    if length > 0:
        cache.layers = [_PreallocatedLayer(k[:, :, :length], v[:, :, :length], rows, capacity) for k, v in prefix]
    return cache


@contextlib.contextmanager
def fast_attention(handle: ModelHandle, implementation: str | None = "sdpa") -> Iterator[None]:
    """Run the block with another attention implementation (None: leave the model's), then restore it."""
    model = handle.hf_model
    before = model.config._attn_implementation
    if implementation is None or implementation == before:
        yield
        return
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


class _PreallocatedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of a buffer sized for the whole rollout."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: int, capacity: int) -> None:
        super().__init__()
        self.dtype, self.device = keys.dtype, keys.device
        _, heads, length, dim = keys.shape
        self._keys = keys.new_empty((rows, heads, max(capacity, length), dim))
        self._values = values.new_empty((rows, heads, max(capacity, length), values.shape[-1]))
        self._keys[:, :, :length] = keys
        self._values[:, :, :length] = values
        self._length = length
        self.is_initialized = True
        self._refresh()

    def _refresh(self) -> None:
        self.keys = self._keys[:, :, :self._length]
        self.values = self._values[:, :, :self._length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            raise RuntimeError(f"KV cache capacity {self._keys.shape[-2]} exceeded")
        self._keys[:, :, self._length:end] = key_states
        self._values[:, :, self._length:end] = value_states
        self._length = end
        self._refresh()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys = self._keys[indices]
        self._values = self._values[indices]
        self._refresh()
