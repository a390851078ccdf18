"""Types shared by every layer (one definition each)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

T = TypeVar("T")

# How sentences, prefixes and answers are read: the published method's quirks ("paper") or anchors' fixes.
Mode = Literal["default", "paper"]
# Why a sampled continuation ended ("error": the sampler could not produce it).
FinishReason = Literal["eos", "stop", "length", "error"]
# Wraps an iteration with a progress display: `progress(items, "what") -> items` (e.g. anchors.console.track).
Progress = Callable[[Sequence[T], str], Iterable[T]]
