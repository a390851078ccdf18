"""Adaptive sampling (`anchors score --adaptive`): sample in rounds and stop sampling for a sentence once the
bootstrap interval of its counterfactual importance is narrower than a target.

Round 0 draws `initial` rollouts from every prefix. After each round the counterfactual importance is
re-estimated; a sentence i is *open* while its interval is wider than `target_width` (or undefined, e.g. no
dissimilar resample yet), and every open sentence asks for `step` more rollouts from the two prefixes its
estimate rests on (R_i and R_{i+1}), up to `max_rollouts` per prefix. Each round's rollouts are new ones (the
round is part of the request key), so a re-run with the same settings asks the rollout store for the same
requests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from anchors.errors import InputError
from anchors.methods.blackbox import BlackBoxConfig
from anchors.methods.counterfactual import counterfactual_importance
from anchors.methods.rollout_sets import PrefixRollouts, TraceRollouts
from anchors.methods.sampling import sample_trace_rollouts
from anchors.methods.scores import TraceScores, rollout_counts, score_rollouts
from anchors.models.embeddings import Embedder


@dataclass(frozen=True)
class AdaptiveConfig:
    initial: int = 10  # rollouts per prefix in the first round
    step: int = 10  # more rollouts per open prefix per round
    max_rollouts: int = 50  # per prefix
    target_width: float = 0.5  # width (nats) of the counterfactual-KL interval at which a sentence is done
    metric: str = "importance_kl"  # or "importance_accuracy" (needs gold answers; width in accuracy units)

    def __post_init__(self) -> None:
        if not 1 <= self.initial <= self.max_rollouts or self.step < 1:
            raise InputError("adaptive sampling needs 1 ≤ initial ≤ max_rollouts and step ≥ 1")
        if self.metric not in ("importance_kl", "importance_accuracy"):
            raise InputError(f"adaptive metric must be importance_kl or importance_accuracy, not {self.metric!r}")
        if self.target_width <= 0:
            raise InputError("target_width must be positive")


def score_trace_adaptive(
    trace: Any, sampler: Any, template: Any, embedder: Embedder, config: BlackBoxConfig = BlackBoxConfig(),
    adaptive: AdaptiveConfig = AdaptiveConfig(), *, store: str | None = None, progress: bool = True,
    tags: Any = None,
) -> TraceScores:
    """Like `score_trace`, sampling only as much as each sentence's interval needs; `run` records the rounds."""
    if config.paper or config.replicates == 0:
        raise InputError("adaptive sampling needs bootstrap intervals: use the default mode with bootstrap > 0")
    first_round = replace(config, rollouts=adaptive.initial)
    rollouts: TraceRollouts | None = None
    additions: list[int] | None = None  # None: `initial` rollouts from every prefix
    history: list[list[int]] = []
    while additions is None or any(additions):
        new = sample_trace_rollouts(trace, sampler, template, first_round, store=store, progress=progress,
                                    counts=additions, tag=f"/adaptive{len(history)}")
        rollouts = new if rollouts is None else merge_rollouts(rollouts, new)
        history.append([len(p.resampled) + p.failed for p in rollouts.prefixes])
        additions = next_round(rollouts, embedder, config, adaptive, history[-1])
    assert rollouts is not None
    run = {"sampler": sampler.identity, "adaptive_rounds": len(history), **rollout_counts(rollouts)}
    scores = score_rollouts(rollouts, embedder, config, tags, run)
    return replace(scores, run={**scores.run, "per_prefix": history[-1], "history": history})


def next_round(rollouts: TraceRollouts, embedder: Embedder, config: BlackBoxConfig, adaptive: AdaptiveConfig,
               counts: list[int]) -> list[int]:
    """How many more rollouts each prefix gets next round (all zero: done)."""
    estimate = getattr(counterfactual_importance(rollouts, embedder, replace(config, permutations=0)), adaptive.metric)
    if estimate is None or estimate.lo is None or estimate.hi is None:
        return [0] * len(counts)
    width = estimate.hi - estimate.lo
    open_sentences = np.flatnonzero(~(width <= adaptive.target_width))  # NaN width: still open
    wanted = np.zeros(len(counts), dtype=bool)
    for i in open_sentences:
        wanted[i] = True
        if i + 1 < len(counts):
            wanted[i + 1] = True
    return [min(adaptive.step, adaptive.max_rollouts - c) if w and c < adaptive.max_rollouts else 0
            for c, w in zip(counts, wanted)]


def merge_rollouts(first: TraceRollouts, second: TraceRollouts) -> TraceRollouts:
    """The rollouts of both, prefix by prefix (same trace, same sentences)."""
    if first.sentences != second.sentences:
        raise ValueError("merge_rollouts needs the rollouts of one trace with the same sentences")
    prefixes = tuple(
        PrefixRollouts(a.resampled + b.resampled,
                       None if a.forced is None and b.forced is None else (a.forced or ()) + (b.forced or ()),
                       a.failed + b.failed)
        for a, b in zip(first.prefixes, second.prefixes))
    return replace(first, prefixes=prefixes)
