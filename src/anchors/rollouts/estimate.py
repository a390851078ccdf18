"""What a sampling job will cost before it runs (`--dry-run`): rollouts and tokens still to sample, and the time
they take at a tokens/s measured on the sampler itself.

The throughput model: time ≈ new tokens / (tokens/s of the whole sampler). New tokens are at most rollouts ×
`max_new_tokens`; when the store already holds rollouts of the same sampler and parameters, their mean length
gives the expected count. The rate is measured by a short probe (a few of the job's own requests, as many rollouts
as the sampler runs at once, at most PROBE_TOKENS new tokens each; nothing is stored), so it includes prefill and
the sampler's real parallelism (batch rows, calls in flight per server, Ray workers); it is measured on short
continuations, so long ones (slower per token as the context grows) take somewhat longer than estimated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anchors.rollouts.base import PrefixRequest, Sampler, SamplingParams
from anchors.rollouts.store import RolloutStore

PROBE_TOKENS = 32
PROBE_MAX_ROLLOUTS = 256


@dataclass(frozen=True)
class JobCost:
    """One job (requests sampled with one set of parameters)."""

    label: str
    requests: int
    rollouts: int  # planned
    stored: int  # already in the store
    prompt_tokens: int | None  # of the requests with something left to sample: one prefill each (None: unknown)
    max_new_tokens: int  # per rollout
    mean_stored_tokens: float | None  # mean completion length of this job's stored rollouts

    @property
    def to_sample(self) -> int:
        return self.rollouts - self.stored

    @property
    def new_tokens_at_most(self) -> int:
        return self.to_sample * self.max_new_tokens

    @property
    def new_tokens_expected(self) -> int:
        mean = self.mean_stored_tokens if self.mean_stored_tokens is not None else self.max_new_tokens
        return round(self.to_sample * mean)


@dataclass(frozen=True)
class Rate:
    """A measured sampling rate."""

    tokens_per_s: float
    rollouts: int
    tokens: int
    seconds: float


def job_cost(label: str, sampler: Sampler, requests: Sequence[PrefixRequest], params: SamplingParams,
             store: str | Path | None, count_tokens: Callable[[str], int] | None = None) -> JobCost:
    """What `collect_rollouts(sampler, requests, params, store=store)` would still sample."""
    stored, lengths, missing = 0, [], []
    exists = store is not None and Path(store).is_file()  # a dry run creates nothing
    with RolloutStore(store) if exists else _NoStore() as db:
        for request in requests:
            have = [r for r in db.rollouts(sampler.identity, params, request) if r.index in request.wanted_indices()]
            stored += len(have)
            lengths += [r.completion_tokens for r in have]
            if len(have) < len(request.wanted_indices()):
                missing.append(request)
    prompt_tokens = sum(count_tokens(r.prompt_text) for r in missing) if count_tokens is not None else None
    return JobCost(label, len(requests), sum(len(r.wanted_indices()) for r in requests), stored, prompt_tokens,
                   params.max_new_tokens, sum(lengths) / len(lengths) if lengths else None)


def measure_rate(sampler: Sampler, requests: Sequence[PrefixRequest], params: SamplingParams) -> Rate:
    """Tokens/s of `sampler` on the first of `requests`, as many rollouts as it runs at once (nothing stored)."""
    width = min(parallel_rollouts(sampler), PROBE_MAX_ROLLOUTS)
    probe, total = [], 0
    for request in requests:
        if total >= width:
            break
        take = request.wanted_indices()[: width - total]
        probe.append(replace(request, indices=take))
        total += len(take)
    short = replace(params, max_new_tokens=min(params.max_new_tokens, PROBE_TOKENS))
    began = time.perf_counter()
    rollouts = [r for r in sampler.sample(probe, short) if r.ok]
    seconds = time.perf_counter() - began
    tokens = sum(r.completion_tokens or len(r.token_ids) for r in rollouts)
    return Rate(tokens / seconds if seconds > 0 else 0.0, len(rollouts), tokens, seconds)


def parallel_rollouts(sampler: Sampler) -> int:
    """How many rollouts the sampler works on at once: batch rows, calls in flight × rollouts a call, or units
    across Ray workers."""
    workers = getattr(sampler, "workers", None)
    if workers is not None and hasattr(sampler, "rollouts_per_unit"):
        return max(1, len(workers)) * int(sampler.rollouts_per_unit)
    if hasattr(sampler, "base_urls"):
        return len(sampler.base_urls) * int(sampler.concurrency) * int(sampler.n_per_request)
    return int(getattr(sampler, "batch_size", 16))


def duration(seconds: float) -> str:
    """'2 d 3 h', '1 h 05 min', '4 min 10 s', '12 s'."""
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class _NoStore:
    """Stands for an absent store: it holds nothing."""

    def __enter__(self) -> _NoStore:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def rollouts(self, *args: object) -> list:
        return []
