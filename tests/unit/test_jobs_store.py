"""collect_rollouts with and without the SQLite store, on a scripted sampler (no model)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

import pytest

from anchors.errors import InputError
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams, rollout_seed
from anchors.rollouts.jobs import SamplingFailed, collect_rollouts
from anchors.rollouts.store import RolloutStore

PARAMS = SamplingParams(max_new_tokens=8)


class Scripted:
    """Text = a function of (prompt, seed, index); counts what it was asked for; can fail chosen indices."""

    identity = "scripted:v1"

    def __init__(self, respect_indices: bool = True, fail: set[int] = frozenset()) -> None:
        self.respect_indices, self.fail = respect_indices, set(fail)
        self.asked: list[tuple[str, int]] = []

    def sample(self, requests: Sequence[PrefixRequest], params: SamplingParams) -> Iterator[Rollout]:
        for request in requests:
            indices = request.wanted_indices() if self.respect_indices else range(request.n)
            for k in indices:
                self.asked.append((request.key, k))
                seed = rollout_seed(request.seed, k)
                if k in self.fail:
                    yield Rollout(key=request.key, index=k, seed=seed, text="", finish_reason="error",
                                  error="http://fake: down")
                    continue
                yield Rollout(key=request.key, index=k, seed=seed, text=f"{request.prompt_text}|{seed % 997}",
                              token_ids=[k, seed % 50], finish_reason="eos", completion_tokens=2)


def requests(n: int = 5) -> list[PrefixRequest]:
    return [PrefixRequest(key=f"t/{i}", prompt_text=f"prefix {i}", n=n, seed=7) for i in range(3)]


def test_in_memory_results_are_sorted_and_complete() -> None:
    out = collect_rollouts(Scripted(), requests(), PARAMS, progress=False)
    assert list(out) == ["t/0", "t/1", "t/2"]
    assert [r.index for r in out["t/1"]] == list(range(5))
    assert out["t/1"][3].seed == rollout_seed(7, 3)


def test_store_resumes_asking_only_for_what_is_missing(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    first = collect_rollouts(Scripted(), requests(3), PARAMS, store=store, progress=False)
    sampler = Scripted()
    second = collect_rollouts(sampler, requests(5), PARAMS, store=store, progress=False)
    assert sorted(sampler.asked) == sorted((f"t/{i}", k) for i in range(3) for k in (3, 4))
    assert second["t/0"][:3] == first["t/0"]
    again = Scripted()
    assert collect_rollouts(again, requests(5), PARAMS, store=store, progress=False) == second
    assert again.asked == []
    with RolloutStore(store) as db:
        assert db.count() == 15


def test_a_different_seed_params_or_prompt_is_a_different_rollout(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    collect_rollouts(Scripted(), requests(2), PARAMS, store=store, progress=False)
    for changed_requests, params in [
        ([PrefixRequest(key=r.key, prompt_text=r.prompt_text, n=2, seed=8) for r in requests(2)], PARAMS),
        (requests(2), SamplingParams(max_new_tokens=9)),
        ([PrefixRequest(key=r.key, prompt_text=r.prompt_text + "!", n=2, seed=7) for r in requests(2)], PARAMS),
    ]:
        sampler = Scripted()
        collect_rollouts(sampler, changed_requests, params, store=store, progress=False)
        assert len(sampler.asked) == 6


def test_samplers_that_ignore_indices_are_filtered_not_duplicated(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    collect_rollouts(Scripted(), requests(2), PARAMS, store=store, progress=False)
    out = collect_rollouts(Scripted(respect_indices=False), requests(4), PARAMS, store=store, progress=False)
    assert [r.index for r in out["t/2"]] == [0, 1, 2, 3]
    with RolloutStore(store) as db:
        assert db.count() == 12


def test_failures_are_not_stored_and_the_rest_is_kept(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    with pytest.raises(SamplingFailed, match=r"3 rollout\(s\) failed: http://fake: down") as caught:
        collect_rollouts(Scripted(fail={1}), requests(3), PARAMS, store=store, progress=False)
    assert [r.index for r in caught.value.results["t/0"]] == [0, 2]
    kept = collect_rollouts(Scripted(fail={1}), requests(3), PARAMS, store=store, progress=False, errors="keep")
    assert [(r.index, r.ok) for r in kept["t/0"]] == [(0, True), (1, False), (2, True)]
    retry = Scripted()
    collect_rollouts(retry, requests(3), PARAMS, store=store, progress=False)
    assert sorted(retry.asked) == [(f"t/{i}", 1) for i in range(3)]


def test_streaming_reads_describe_each_rollout(tmp_path) -> None:
    store = tmp_path / "r.sqlite"
    collect_rollouts(Scripted(), requests(2), PARAMS, store=store, progress=False)
    with RolloutStore(store) as db:
        rows = list(db.iter_rollouts(key_prefix="t/1"))
        assert [(r["request_key"], r["idx"]) for r in rows] == [("t/1", 0), ("t/1", 1)]
        assert rows[0]["prompt_text"] == "prefix 1" and rows[0]["params_record"]["max_new_tokens"] == 8
        assert rows[0]["token_ids"] == [0, rollout_seed(7, 0) % 50]
        assert db.provenance(rows[0]["provenance"])["sampler"] == "scripted:v1"
        journal = db._connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_bad_requests_and_bad_store_files_give_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unique"):
        collect_rollouts(Scripted(), requests() + requests()[:1], PARAMS, progress=False)
    with pytest.raises(ValueError, match="indices must lie in range"):
        bad = PrefixRequest(key="x", prompt_text="p", n=2, seed=0, indices=(5,))
        collect_rollouts(Scripted(), [bad], PARAMS, progress=False)
    garbage = tmp_path / "not-a-db.sqlite"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not a usable rollout store"):
        RolloutStore(garbage)
    newer = tmp_path / "newer.sqlite"
    RolloutStore(newer).close()
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(InputError, match="newer than this anchors supports"):
        RolloutStore(newer)
