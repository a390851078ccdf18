"""Adaptive sampling (`anchors score --adaptive`): sample in rounds and stop sampling for a sentence once the
bootstrap interval of its counterfactual importance is narrower than a target.

Round 0 draws `initial` rollouts from every prefix. After each round the counterfactual importance is
re-estimated; a sentence i is *done* when its interval is narrower than `target_width` (once R_i and R_{i+1} hold
`min_rollouts` each), or — with `top_k` set —
when its interval is separated from the current top k (entirely below the lowest lower bound among the top k,
or entirely above the highest upper bound among the rest): its rank no longer needs more precision. Every open
sentence (an undefined interval, e.g. no dissimilar resample yet, is open) asks for `step` more rollouts from the
two prefixes its estimate rests on (R_i and R_{i+1}), up to `max_rollouts` per prefix.

Rounds extend each prefix's rollout stream (see `anchors.rollouts.plan.ROLLOUT_BLOCK`): the first n rollouts of a prefix are
the same whether a fixed run or adaptive rounds asked for them, so a prefix sampled up to the cap holds exactly
the fixed run's rollouts, and the rollout store serves a re-run (or a later fixed run) without sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from anchors.errors import InputError
from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.counterfactual import counterfactual_importance
from anchors.methods.blackbox.phases import PhaseTimer
from anchors.methods.blackbox.rollout_sets import PrefixRollouts, TraceRollouts
from anchors.methods.blackbox.sampling import default_stops, run_outcome, sample_trace_rollouts
from anchors.methods.blackbox.scores import TraceScores, rollout_counts, score_rollouts
from anchors.models.embeddings import Embedder
from anchors.outcomes.spec import outcome_file_hash
from anchors.rollouts.plan import chosen_sentences


@dataclass(frozen=True)
class AdaptiveConfig:
    initial: int = 10  # rollouts per prefix in the first round
    step: int = 5  # more rollouts per open prefix per round
    max_rollouts: int = 50  # per prefix
    target_width: float = 1.5  # width (nats) of the counterfactual-KL interval at which a sentence is done
    top_k: int | None = 3  # also done once separated from the top k (None: the width rule alone)
    min_rollouts: int = 20  # the width rule applies once both prefixes of a sentence hold this many rollouts
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
    adaptive: AdaptiveConfig = AdaptiveConfig(), *, store: str | None = None, progress: Any = True,
    tags: Any = None, outcome: Any = None,
) -> TraceScores:
    """Like `score_trace`, sampling only as much as each sentence's interval needs; `run` records the rounds."""
    if config.paper or config.replicates == 0:
        raise InputError("adaptive sampling needs bootstrap intervals: use the default mode with bootstrap > 0")
    timer = PhaseTimer()
    outcome = outcome if outcome is not None else run_outcome(config, template)
    first = replace(config, rollouts=adaptive.initial)
    rollouts = sample_trace_rollouts(trace, sampler, template, first, store=store, progress=progress, outcome=outcome,
                                     timer=timer)
    history = [default_stops(trace, rollouts.n, len(rollouts.prefixes), first)]
    while any(more := _timed_round(rollouts, embedder, config, adaptive, history[-1], timer)):
        stops = [have + extra for have, extra in zip(history[-1], more)]
        new = sample_trace_rollouts(trace, sampler, template, config, store=store, progress=progress,
                                    starts=history[-1], stops=stops, outcome=outcome, timer=timer)
        rollouts = merge_rollouts(rollouts, new)
        history.append(stops)
    run = {"sampler": sampler.identity, "outcome_sha256": outcome_file_hash(outcome), "adaptive_rounds": len(history),
           **rollout_counts(rollouts)}
    scores = score_rollouts(rollouts, embedder, config, tags, run, timer)
    return replace(scores, run={**scores.run, "per_prefix": history[-1], "history": history})


def _timed_round(rollouts: TraceRollouts, embedder: Embedder, config: BlackBoxConfig, adaptive: AdaptiveConfig,
                 counts: list[int], timer: PhaseTimer) -> list[int]:
    with timer.phase("metrics"):
        return next_round(rollouts, timer.embedder(embedder), config, adaptive, counts)


def next_round(rollouts: TraceRollouts, embedder: Embedder, config: BlackBoxConfig, adaptive: AdaptiveConfig,
               counts: list[int]) -> list[int]:
    """How many more rollouts each prefix gets next round (all zero: done)."""
    estimate = getattr(counterfactual_importance(rollouts, embedder, replace(config, permutations=0)), adaptive.metric)
    if estimate is None or estimate.lo is None or estimate.hi is None:
        return [0] * len(counts)
    # bootstrap intervals from a handful of rollouts are too narrow too often: the width rule waits for more
    held = np.array(counts, dtype=float)
    enough = np.minimum(held[: len(estimate.value)], np.append(held[1:], np.inf)[: len(estimate.value)]) >= adaptive.min_rollouts
    done = ((estimate.hi - estimate.lo) <= adaptive.target_width) & enough  # NaN: still open
    if config.sentences is not None:  # sentences left out are never sampled for
        scored = chosen_sentences(rollouts.trace_id, rollouts.n, config.sentences)
        done |= ~np.isin(np.arange(len(done)), scored)
    if adaptive.top_k is not None:
        done |= separated(estimate.value, estimate.lo, estimate.hi, adaptive.top_k)
    open_sentences = np.flatnonzero(~done)
    wanted = np.zeros(len(counts), dtype=bool)
    for i in open_sentences:
        wanted[i] = True
        if i + 1 < len(counts):
            wanted[i + 1] = True
    return [min(adaptive.step, adaptive.max_rollouts - c) if w and c < adaptive.max_rollouts else 0
            for c, w in zip(counts, wanted)]


def separated(value: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: int) -> np.ndarray:
    """Sentences whose interval lies wholly below the top k's lowest lower bound or wholly above the rest's
    highest upper bound (NaN estimates are never separated)."""
    defined = np.isfinite(value) & np.isfinite(lo) & np.isfinite(hi)
    if defined.sum() <= k:
        return np.zeros(len(value), dtype=bool)
    order = np.argsort(np.where(defined, -value, np.inf), kind="stable")
    top, rest = order[:k], order[k:][defined[order[k:]]]
    below = hi < lo[top].min()
    above = lo > hi[rest].max()
    in_top = np.isin(np.arange(len(value)), top)
    return defined & np.where(in_top, above, below)


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
