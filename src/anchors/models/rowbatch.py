"""A batch of rows on the model, every row continuing part of one encoded prefix (the engine's model half).

Row j takes the first `shared[j]` tokens of the prefix and has its own `tail[j]`: the rest of its prompt (at
least its last token). Rows of one prompt have the same tail; each distinct tail is run once, left-padded to
the longest, in one batched forward (in chunks of `chunk` tokens), and the rows are then copied from it. After
that every step feeds one token per row. Row j's own tokens take positions shared[j], shared[j] + 1, … so it
sees exactly its prompt, as it would alone; padding and the prefix positions beyond shared[j] are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from anchors.models.kvcache import PrefixKV, SharedPrefixCache

if TYPE_CHECKING:
    import torch
    from jaxtyping import Float

    from anchors.models.handle import ModelHandle


class RowBatch:
    def __init__(self, handle: ModelHandle, prefix: PrefixKV, shared: Sequence[int], tails: Sequence[Sequence[int]],
                 new_tokens: int, chunk: int = 1024) -> None:
        """`shared[j]`, `tails[j]`: row j's part of the prefix and its own prompt tokens; `new_tokens`: the
        most tokens any row samples. Call `start` once, then `step` and `keep`."""
        import torch

        if any(not tail for tail in tails):
            raise ValueError("every row needs at least one prompt token of its own")
        self.handle, self.device = handle, handle.device
        self.distinct = list(dict.fromkeys((s, tuple(t)) for s, t in zip(shared, tails)))
        owners = {key: i for i, key in enumerate(self.distinct)}
        self.owners = torch.tensor([owners[(s, tuple(t))] for s, t in zip(shared, tails)], device=self.device)
        self.cached = max(shared)
        self.width = max(len(t) for t in tails)  # own slots holding (left-padded) tails
        self.cache = SharedPrefixCache(handle, prefix, self.cached, len(self.distinct), self.width + new_tokens)
        self.chunk = chunk
        self.seen = _seen(self.distinct, self.cached, self.width + new_tokens, self.device)
        self.positions = torch.tensor([s + len(t) for s, t in self.distinct], device=self.device)
        # Decoding needs a mask only where a row shares less of the prefix or was padded.
        self.mask = None if bool(self.seen.all()) else _additive(self.seen, handle.hf_model.dtype)

    def start(self) -> Float[torch.Tensor, "row vocab"]:
        """Run every distinct tail, copy the rows out of them; each row's logits for its first new token."""
        import torch

        ids, positions = _left_padded(self.distinct, self.width, self.device)
        step = max(1, self.chunk // len(self.distinct))
        for begin in range(0, self.width, step):
            end = min(begin + step, self.width)
            mask = _tail_mask(self.seen, self.cached, begin, end, self.handle.hf_model.dtype)
            logits = self._forward(ids[:, begin:end], positions[:, begin:end], mask)
        self.cache.batch_select_indices(self.owners)
        self.positions = self.positions[self.owners]
        if self.mask is not None:
            self.mask = self.mask[self.owners]
        return torch.index_select(logits, 0, self.owners)

    def step(self, tokens: torch.Tensor) -> Float[torch.Tensor, "row vocab"]:
        """Feed one token per (kept) row; the logits for each row's next token."""
        length = self.cached + self.cache.own_length() + 1
        mask = None if self.mask is None else self.mask[:, None, None, :length]
        tokens = tokens.to(self.device).view(-1, 1)
        logits = self._forward(tokens, self.positions.view(-1, 1), mask)
        self.positions = self.positions + 1
        return logits

    def keep(self, kept: torch.Tensor) -> None:
        """Drop every row not in `kept` (indices into the current rows, in order)."""
        kept = kept.to(self.device)
        self.cache.batch_select_indices(kept)
        self.positions = self.positions[kept]
        if self.mask is not None:
            self.mask = self.mask[kept]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.handle.hf_model(input_ids=ids, position_ids=positions, attention_mask=mask, logits_to_keep=1,
                                   **self.cache.forward_inputs())
        return out.logits[:, -1, :]


def _seen(distinct: Sequence[tuple[int, tuple[int, ...]]], cached: int, slots: int, device: Any) -> torch.Tensor:
    """[row, cached + slots] bool: the prefix positions a row sees (< its shared part) and its own slots
    (from where its left-padded tail starts)."""
    import torch

    width = max(len(tail) for _, tail in distinct)
    seen = torch.ones(len(distinct), cached + slots, dtype=torch.bool, device=device)
    for r, (shared, tail) in enumerate(distinct):
        seen[r, shared:cached] = False
        seen[r, cached:cached + width - len(tail)] = False
    return seen


def _additive(seen: torch.Tensor, dtype: Any) -> torch.Tensor:
    import torch

    return torch.zeros(seen.shape, dtype=dtype, device=seen.device).masked_fill_(~seen, float("-inf"))


def _left_padded(distinct: Sequence[tuple[int, tuple[int, ...]]], width: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids [row, width] (each tail right-aligned; padding repeats its first token, masked) and positions."""
    import torch

    ids = [[tail[0]] * (width - len(tail)) + list(tail) for _, tail in distinct]
    positions = [[shared] * (width - len(tail)) + list(range(shared, shared + len(tail))) for shared, tail in distinct]
    return (torch.tensor(ids, dtype=torch.long, device=device), torch.tensor(positions, dtype=torch.long, device=device))


def _tail_mask(seen: torch.Tensor, cached: int, begin: int, end: int, dtype: Any) -> torch.Tensor:
    """Additive mask [row, 1, end - begin, cached + end] for tail slots begin..end-1: the prefix a row sees,
    its own earlier (unpadded) slots, and itself (a padding slot sees only itself, so it stays finite)."""
    import torch

    slots = torch.arange(end, device=seen.device)
    queries = torch.arange(begin, end, device=seen.device)
    causal = slots[None, :] <= queries[:, None]  # [q, own]
    own = (seen[:, None, cached:cached + end] & causal) | (slots[None, :] == queries[:, None])
    prefix = seen[:, None, :cached].expand(-1, end - begin, -1)
    return _additive(torch.cat([prefix, own], dim=-1), dtype)[:, None]
