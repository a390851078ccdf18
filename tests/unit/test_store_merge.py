"""Shards of a trace set, and merging rollout stores (`anchors store merge`, `anchors store info`), on a scripted
sampler (no model)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_jobs_store import PARAMS, Scripted
from typer.testing import CliRunner

from anchors.cli import app
from anchors.errors import InputError
from anchors.rollouts.base import PrefixRequest
from anchors.rollouts.jobs import SamplingFailed, collect_rollouts
from anchors.rollouts.store import RolloutStore
from anchors.traces.shards import Shard, shard_of

runner = CliRunner()
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


def test_cli_merge_skips_a_damaged_store_names_conflicts_and_exits_1(tmp_path: Path) -> None:
    first = sampled(tmp_path / "a.sqlite", job(range(2)))
    other = sampled(tmp_path / "b.sqlite", job(range(1, 3)), Different())
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"not a database at all" * 10)
    into = tmp_path / "all.sqlite"
    result = runner.invoke(app, ["store", "merge", str(first), str(broken), str(tmp_path / "absent.sqlite"),
                                 str(other), "--into", str(into)])
    assert result.exit_code == 1, result.output
    assert "broken.sqlite: not a usable rollout store" in result.stderr
    assert "absent.sqlite: no such rollout store" in result.stderr
    assert "b.sqlite: 12 rollout(s) differ" in result.stderr and "tr1/resample/0/0 #0" in result.stderr
    assert len(rows(into)) == 24 + 12  # a.sqlite whole, then trace 2 of b.sqlite
    assert not broken.with_suffix(".sqlite-wal").exists() and (tmp_path / "absent.sqlite").exists() is False


def test_merging_a_store_into_itself_is_refused(tmp_path: Path) -> None:
    store = sampled(tmp_path / "a.sqlite", job(range(1)))
    result = runner.invoke(app, ["store", "merge", str(store), "--into", str(store)])
    assert result.exit_code == 1 and "this is the store merged into" in result.stderr


def test_store_info_counts_rows_and_the_failures_still_missing(tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    with pytest.raises(SamplingFailed):
        sampled(store, job(range(2)), Scripted(fail={3}))
    result = runner.invoke(app, ["store", "info", str(store), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (group,) = summary["groups"]
    assert summary["rollouts"] == 18 and group["rows"] == 18 and group["traces"] == 2 and group["request_keys"] == 6
    assert group["finish_reasons"] == {"eos": 18} and group["completion_tokens"] == 36
    assert group["missing_after_failure"] == 6 and group["failure_causes"] == {"http://fake: down": 6}
    assert group["params_record"]["max_new_tokens"] == PARAMS.max_new_tokens
    sampled(store, job(range(2)))  # the retry fills them in: nothing is missing any more
    again = json.loads(runner.invoke(app, ["store", "info", str(store), "--json"]).stdout)
    assert again["groups"][0]["missing_after_failure"] == 0 and again["rollouts"] == 24
    table = runner.invoke(app, ["store", "info", str(store)])
    assert table.exit_code == 0 and "scripted:v1" in table.stdout and "eos 24" in table.stdout


def test_store_info_on_a_file_that_is_not_a_store_fails_without_touching_it(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    result = runner.invoke(app, ["store", "info", str(other)])
    assert result.exit_code == 2 and "not a rollout store" in result.stderr
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["t"]
