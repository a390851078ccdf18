"""The sampling contract every black-box method is written against.

A `PrefixRequest` asks for `n` continuations of one prompt (a prefix of a trace, rendered by the model's
template). A `Sampler` turns requests into `Rollout` records. Engines (the local shared-prefix engine, the
OpenAI-compatible server backend) and the test suite's scripted samplers all implement `Sampler`, so the
methods never know which one produced their rollouts.

Determinism: rollout k of a request is fully determined by (sampler identity, prompt, params, seed, k);
engines derive each rollout's randomness from `rollout_seed(request.seed, k)`, never from batch layout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from anchors.types import FinishReason



@dataclass(frozen=True)
class SamplingParams:
    """How continuations are sampled. Defaults are the paper's (methods.md §1) except the token budget."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 1024
    stop: tuple[str, ...] = ()
    # Stop right after the closing brace of the first \boxed{...} that follows the thinking's closing tag:
    # the answer is known then, and the rest is wasted tokens.
    stop_after_boxed_answer: bool = True
    logprobs: bool = False

    def fingerprint(self) -> str:
        return _digest(asdict(self))


@dataclass(frozen=True)
class PrefixRequest:
    """`n` continuations of `prompt_text` (whose token ids, when known, are `prompt_ids`)."""

    key: str  # caller's stable name, e.g. "arith-01/resample/7"; unique within a job
    prompt_text: str
    n: int
    seed: int
    prompt_ids: tuple[int, ...] | None = None
    meta: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    # Only these rollout indices (each in range(n)); None means all of them. Resumed jobs use it to ask for
    # what the store lacks; a sampler that ignores it still works (extra rollouts are discarded).
    indices: tuple[int, ...] | None = None

    def wanted_indices(self) -> tuple[int, ...]:
        """The rollout indices this request asks for, in increasing order."""
        return tuple(range(self.n)) if self.indices is None else tuple(sorted(set(self.indices)))

    def prompt_hash(self) -> str:
        """Hash of exactly what the model is given: the prompt text and, when fixed, its token ids."""
        ids = list(self.prompt_ids) if self.prompt_ids is not None else None
        return hashlib.sha256(json.dumps([self.prompt_text, ids]).encode()).hexdigest()[:32]


class Rollout(BaseModel):
    """One sampled continuation. `error` is set (and `finish_reason == "error"`) when sampling failed."""

    model_config = ConfigDict(frozen=True)

    key: str
    index: int  # k, 0 <= k < n
    seed: int  # rollout_seed(request.seed, k)
    text: str
    token_ids: list[int] = []
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[float] | None = None
    error: str | None = None
    # Wall-clock seconds spent on this rollout's share of its batch (provenance, not part of the result).
    elapsed_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Sampler(Protocol):
    """Anything that turns prefix requests into rollouts (in any order)."""

    @property
    def identity(self) -> str:
        """Model and backend identity recorded with every result (e.g. 'hf:smollm2-135m@sha256:…')."""
        ...

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]: ...


def rollout_seed(base_seed: int, index: int) -> int:
    """The seed of rollout `index` of a request: independent of batching, stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{index}".encode()).digest()[:8], "little") & (2**63 - 1)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
