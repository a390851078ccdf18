"""Where the time of scoring a trace goes: seconds per phase, for the recorded `timing` and `anchors score --profile`.

Phases nest (the embedder is called inside the metrics); each phase is timed *exclusively*: an inner phase's
seconds are taken out of the phase around it, so the phases add up to the time spent in any of them.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

# In the order scoring runs them (the keys run.json gets are f"{phase}_seconds").
PHASES = ("sampling_resampled", "sampling_forced", "sampling_closing", "grading", "embedding", "metrics")


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # per open phase: seconds spent in the phases inside it

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - began
            self.seconds[name] += elapsed - self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed

    def embedder(self, embedder: Any) -> Any:
        """`embedder` with its `embed` calls timed as the embedding phase."""
        return _TimedEmbedder(embedder, self)

    def as_run(self) -> dict[str, float]:
        """{phase}_seconds for every phase that ran, rounded to milliseconds."""
        order = [p for p in PHASES if p in self.seconds] + sorted(set(self.seconds) - set(PHASES))
        return {f"{name}_seconds": round(self.seconds[name], 3) for name in order}


class _TimedEmbedder:
    def __init__(self, embedder: Any, timer: PhaseTimer) -> None:
        self._embedder, self._timer = embedder, timer

    @property
    def identity(self) -> str:
        return self._embedder.identity

    def embed(self, texts: Sequence[str]) -> Any:
        with self._timer.phase("embedding"):
            return self._embedder.embed(texts)


def optional_phase(timer: PhaseTimer | None, name: str) -> contextlib.AbstractContextManager[None]:
    """`timer.phase(name)`, or nothing when no timer is given."""
    return timer.phase(name) if timer is not None else contextlib.nullcontext()
