"""`anchors store merge` and `anchors store info` on stores a scripted sampler filled (no model)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchors.cli import app
from anchors.rollouts.jobs import SamplingFailed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_jobs_store import PARAMS, Scripted  # noqa: E402
from test_store_merge import Different, job, rows, sampled  # noqa: E402

runner = CliRunner()


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
