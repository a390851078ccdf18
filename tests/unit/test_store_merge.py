"""Shards of a trace set, and merging rollout stores (`anchors store merge`, `anchors store info`), on a scripted
sampler (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_jobs_store import PARAMS, Scripted

from anchors.errors import InputError
from anchors.rollouts.base import PrefixRequest
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.store import RolloutStore
from anchors.traces.shards import Shard, shard_of

FIELDS = ("request_key", "sampler", "params", "prompt_hash", "request_seed", "idx", "seed", "text", "token_ids",
          "finish_reason", "prompt_tokens", "completion_tokens", "logprobs")


def job(traces: range, n: int = 4) -> list[PrefixRequest]:
    return [PrefixRequest(key=f"tr{t}/resample/{i}/0", prompt_text=f"trace {t} prefix {i}", n=n, seed=t * 10 + i)
            for t in traces for i in range(3)]


def rows(path: Path) -> list[tuple]:
    with RolloutStore(path) as db:
        return [tuple(str(r[f]) for f in FIELDS) for r in db.iter_rollouts()]


def sampled(path: Path, requests: list[PrefixRequest], sampler: Scripted | None = None) -> Path:
    collect_rollouts(sampler or Scripted(), requests, PARAMS, store=path, progress=False)
    return path


def test_shards_partition_the_traces_stably() -> None:
    ids = [f"trace-{i}" for i in range(200)]
    shards = [Shard.parse(f"{i}/3") for i in range(3)]
    held = [[t for t in ids if s.holds(t)] for s in shards]
    assert sorted(sum(held, [])) == sorted(ids)  # each trace in exactly one shard
    assert all(40 < len(h) < 100 for h in held)  # and the hash spreads them (200/3 each, expected)
    # pinned: the assignment must never change between versions or machines, or shards run apart would overlap
    assert [shard_of(t, 4) for t in ("arith-25", "arith-13", "arith-15", "x")] == [3, 2, 2, 1]


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0"])
def test_a_bad_shard_names_the_expected_form(text: str) -> None:
    with pytest.raises(InputError, match="shard"):
        Shard.parse(text)


def test_merged_shards_equal_the_unsharded_store_and_a_second_merge_adds_nothing(tmp_path: Path) -> None:
    whole = sampled(tmp_path / "whole.sqlite", job(range(4)))
    first = sampled(tmp_path / "a.sqlite", job(range(0, 2)))
    second = sampled(tmp_path / "b.sqlite", job(range(2, 4)))
    merged = tmp_path / "all.sqlite"
    with RolloutStore(merged) as db:
        counts = [db.merge(first), db.merge(second)]
        again = db.merge(first)
    assert [(c.rows, c.added, c.identical, c.conflicting) for c in counts] == [(24, 24, 0, 0), (24, 24, 0, 0)]
    assert (again.rows, again.added, again.identical, again.conflicting) == (24, 0, 24, 0)
    assert rows(merged) == rows(whole)
    with RolloutStore(merged) as db:  # every merged row still points at its provenance record
        assert all(db.provenance(r["provenance"])["sampler"] == "scripted:v1" for r in db.iter_rollouts())


class Different(Scripted):
    """The same keys as Scripted, different text for trace 1's rollouts (as another batch layout could give)."""

    def sample(self, requests, params):
        for rollout in super().sample(requests, params):
            yield rollout.model_copy(update={"text": rollout.text + " (other)"}) if rollout.key.startswith("tr1/") else rollout


def test_a_conflicting_row_is_refused_named_and_the_rest_merged(tmp_path: Path) -> None:
    ours = sampled(tmp_path / "ours.sqlite", job(range(2)))
    theirs = sampled(tmp_path / "theirs.sqlite", job(range(3)), Different())  # trace 1 differs, 2 is new
    before = rows(ours)
    with RolloutStore(ours) as db:
        counts = db.merge(theirs, name_conflicts=2)
    assert (counts.rows, counts.added, counts.identical, counts.conflicting) == (36, 12, 12, 12)
    assert [(k.request_key, k.idx) for k in counts.conflicts] == [("tr1/resample/0/0", 0), ("tr1/resample/0/0", 1)]
    after = rows(ours)
    assert set(before) <= set(after) and len(after) == 36  # ours kept its own trace 1
    assert not any("(other)" in row[FIELDS.index("text")] for row in after)
