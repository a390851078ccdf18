"""Run a batch of prefix requests through a sampler and gather the rollouts per request.

`collect_rollouts` is the one entry point the methods use. With `store=PATH` every finished rollout is
written to a crash-safe SQLite store as it arrives, and a re-run asks the sampler only for what the store
lacks (a killed job resumes where it stopped; rollouts are identical to an uninterrupted run's, because each
one depends only on its sampler, prompt, params, seed and index — and, in its last float bits, on the job's
request list, which a re-run repeats). Without a store everything stays in memory.
"""

from __future__ import annotations

import contextlib
import platform
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal, Protocol

from anchors.errors import AnchorsError
from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams
from anchors.rollouts.store import RolloutStore


class SamplingFailed(AnchorsError):
    """Some rollouts could not be sampled; the others were kept (and stored, with a store)."""

    def __init__(self, message: str, failures: list[Rollout], results: dict[str, list[Rollout]]) -> None:
        super().__init__(message)
        self.failures = failures
        self.results = results  # what `collect_rollouts` would have returned, failed rollouts left out


def collect_rollouts(
    sampler: Sampler,
    requests: Sequence[PrefixRequest],
    params: SamplingParams,
    *,
    store: str | Path | RolloutStore | None = None,
    progress: bool | ProgressDisplay = True,
    errors: Literal["raise", "keep"] = "raise",
    phase: str = "sampling",
) -> dict[str, list[Rollout]]:
    """All wanted rollouts of every request, keyed by request key, each list sorted by rollout index.

    `store`: a path (or an open `RolloutStore`) to keep rollouts in and resume from; None keeps them in
    memory. `progress`: True for a bar of this job, False for none, or an object with `add(total, phase)` and
    `advance()` that several jobs share (one bar for all of a trace's sampling; `phase` names this job). `errors`: a rollout the sampler could not produce (e.g. a server that stayed down) is never
    stored; with "raise" (default) a `SamplingFailed` naming the cause is raised after everything else is
    kept, with "keep" the failed rollouts (`finish_reason == "error"`) are returned in their lists.
    """
    _check_requests(requests)
    with _opened(store) as db:
        identity = sampler.identity
        done = {r.key: db.stored_indices(identity, params, r) for r in requests} if db else {}
        todo = [replace(r, indices=tuple(k for k in r.wanted_indices() if k not in done.get(r.key, ())))
                for r in requests]
        fresh, failures = _run(sampler, todo, params, db, progress, phase)
        results = _gather(requests, identity, params, db, fresh, failures if errors == "keep" else [])
    if failures and errors == "raise":
        raise SamplingFailed(_failure_summary(failures, db is not None), failures, results)
    return results


def _run(sampler: Sampler, todo: Sequence[PrefixRequest], params: SamplingParams, db: RolloutStore | None,
         progress: bool | ProgressDisplay, phase: str) -> tuple[dict[str, dict[int, Rollout]], list[Rollout]]:
    """Sample what `todo` asks for; store (or keep) each good rollout once, list the failed ones."""
    wanted = {r.key: set(r.indices or ()) for r in todo}
    by_key = {r.key: r for r in todo}
    total = sum(len(v) for v in wanted.values())
    fresh: dict[str, dict[int, Rollout]] = defaultdict(dict)
    failures: list[Rollout] = []
    if total == 0:
        return fresh, failures
    provenance = db.register(sampler.identity, params, todo, _provenance(sampler)) if db else 0
    with _progress_bar(total, phase, progress) as advance:
        for rollout in sampler.sample(todo, params):
            if rollout.index not in wanted.get(rollout.key, ()):
                continue  # a sampler that ignores `indices`, or a duplicate
            wanted[rollout.key].discard(rollout.index)
            if not rollout.ok:
                failures.append(rollout)
                if db is not None:
                    db.add_failure(by_key[rollout.key], sampler.identity, params, rollout)
            elif db is not None:
                db.add(by_key[rollout.key], sampler.identity, params, rollout, provenance)
            else:
                fresh[rollout.key][rollout.index] = rollout
            advance()
    if db is not None:
        db.commit()
    return fresh, failures


def _gather(requests: Sequence[PrefixRequest], identity: str, params: SamplingParams, db: RolloutStore | None,
            fresh: dict[str, dict[int, Rollout]], failures: list[Rollout]) -> dict[str, list[Rollout]]:
    failed: dict[str, dict[int, Rollout]] = defaultdict(dict)
    for rollout in failures:
        failed[rollout.key][rollout.index] = rollout
    results = {}
    for request in requests:
        wanted = set(request.wanted_indices())
        have = {r.index: r for r in db.rollouts(identity, params, request)} if db else dict(fresh[request.key])
        have.update(failed[request.key])
        results[request.key] = [have[k] for k in sorted(have) if k in wanted]
    return results


def _check_requests(requests: Sequence[PrefixRequest]) -> None:
    keys = [r.key for r in requests]
    if len(set(keys)) != len(keys):
        duplicated = sorted(k for k, count in Counter(keys).items() if count > 1)
        raise ValueError(f"request keys must be unique within a job; repeated: {duplicated[:5]}")
    for request in requests:
        if request.n < 0:
            raise ValueError(f"request {request.key!r}: n must be >= 0, not {request.n}")
        if any(not 0 <= k < request.n for k in request.indices or ()):
            raise ValueError(f"request {request.key!r}: indices must lie in range(n={request.n})")


@contextlib.contextmanager
def _opened(store: str | Path | RolloutStore | None) -> Iterator[RolloutStore | None]:
    if store is None or isinstance(store, RolloutStore):
        yield store
        return
    db = RolloutStore(store)
    try:
        yield db
    finally:
        db.close()


def _provenance(sampler: Sampler) -> dict[str, object]:
    from anchors._version import __version__

    own = getattr(sampler, "provenance", None)
    record = dict(own()) if callable(own) else {}
    return {"anchors": __version__, "python": sys.version.split()[0], "platform": platform.platform(), **record}


def _failure_summary(failures: list[Rollout], stored: bool) -> str:
    causes = Counter(r.error or "unknown error" for r in failures)
    cause, count = causes.most_common(1)[0]
    others = f" ({len(causes) - 1} other cause(s))" if len(causes) > 1 else ""
    kept = ("the others are stored; re-run the same job to retry the failed ones" if stored else
            "the others are in this error's `results`; pass store=PATH to keep them across runs")
    return f"{len(failures)} rollout(s) failed: {cause} [×{count}]{others}; {kept}"


class ProgressDisplay(Protocol):
    """A progress display several jobs share: each adds its total (and names its phase), then advances."""

    def add(self, total: int, phase: str) -> None: ...

    def advance(self) -> None: ...


@contextlib.contextmanager
def _progress_bar(total: int, label: str, show: bool | ProgressDisplay) -> Iterator[Callable[[], None]]:
    if show is False:
        yield lambda: None
        return
    if show is not True:
        show.add(total, label)
        yield show.advance
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from anchors.console import stderr

    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=stderr) as bar:
        task = bar.add_task(f"rollouts ({label})", total=total, rate="")

        def advance() -> None:
            bar.advance(task)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.1f} rollouts/s" if speed else "")

        yield advance
