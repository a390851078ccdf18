"""The reference sampler: one Hugging Face `generate` call per rollout. Slow, simple, obviously correct.

Used as the baseline the fast engine is checked and benchmarked against, and by anything that needs
rollouts before the engine exists.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed

if TYPE_CHECKING:
    from anchors.models import ModelHandle


class SequentialSampler:
    """Implements `Sampler` with `anchors.models.sample`, one rollout at a time."""

    def __init__(self, handle: ModelHandle) -> None:
        self.handle = handle

    @property
    def identity(self) -> str:
        return f"hf:{self.handle.name}"

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        for request in requests:
            ids = list(request.prompt_ids) if request.prompt_ids else self.handle.encode(request.prompt_text)
            for index in request.wanted_indices():
                yield self._one(request, ids, index, params)

    def _one(self, request: PrefixRequest, ids: list[int], index: int, params: SamplingParams) -> Rollout:
        from anchors.models import sample

        seed = rollout_seed(request.seed, index)
        out = sample(self.handle, ids, max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                     top_p=params.top_p, seed=seed, stop_strings=params.stop)[0]
        return Rollout(key=request.key, index=index, seed=seed, text=out.text, token_ids=list(out.token_ids),
                       finish_reason=out.finish_reason, prompt_tokens=len(ids), completion_tokens=len(out.token_ids))
