"""What a job still needs (`--dry-run`): counts against the store and the probe's measured rate, on a scripted sampler."""

from __future__ import annotations

from pathlib import Path

from test_jobs_store import PARAMS, Scripted, requests

from anchors.rollouts.estimate import duration, job_cost, measure_rate, parallel_rollouts
from anchors.rollouts.jobs import collect_rollouts


def test_the_cost_counts_what_the_store_lacks_and_the_mean_stored_length(tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    empty = job_cost("job", Scripted(), requests(5), PARAMS, store, count_tokens=len)
    assert not store.exists()  # a dry run creates nothing
    assert (empty.requests, empty.rollouts, empty.stored, empty.to_sample) == (3, 15, 0, 15)
    assert empty.prompt_tokens == 3 * len("prefix 0") and empty.mean_stored_tokens is None
    assert empty.new_tokens_at_most == empty.new_tokens_expected == 15 * PARAMS.max_new_tokens
    collect_rollouts(Scripted(), requests(3), PARAMS, store=store, progress=False)  # 2 tokens each
    half = job_cost("job", Scripted(), requests(5), PARAMS, store)
    assert (half.stored, half.to_sample, half.prompt_tokens) == (9, 6, None)
    assert half.mean_stored_tokens == 2 and half.new_tokens_expected == 12 and half.new_tokens_at_most == 48
    done = job_cost("job", Scripted(), requests(3), PARAMS, store, count_tokens=len)
    assert done.to_sample == 0 and done.prompt_tokens == 0  # nothing left to prefill


def test_the_probe_asks_for_as_many_rollouts_as_the_sampler_runs_at_once() -> None:
    sampler = Scripted()
    sampler.batch_size = 4
    assert parallel_rollouts(sampler) == 4
    rate = measure_rate(sampler, requests(5), PARAMS)
    assert sampler.asked == [("t/0", k) for k in range(4)]
    assert rate.rollouts == 4 and rate.tokens == 8 and rate.tokens_per_s == 8 / rate.seconds


def test_durations_read_like_a_person_would_write_them() -> None:
    assert [duration(s) for s in (12.4, 250, 3900, 2 * 86400 + 3 * 3600 + 5)] == ["12 s", "4 min 10 s", "1 h 05 min",
                                                                                  "2 d 3 h"]
