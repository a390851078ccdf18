"""The kill test: SIGKILL a 500-rollout job three times at random moments, resume it, and compare the store
with an uninterrupted run's: exactly the planned rollouts, none duplicated, none lost, identical."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anchors.rollouts.store import RolloutStore

HERE = Path(__file__).parent
TOTAL = 500
RESULT_FIELDS = ("request_key", "sampler", "params", "prompt_hash", "request_seed", "idx", "seed", "text",
                 "token_ids", "finish_reason", "prompt_tokens", "completion_tokens", "logprobs")


def start(store: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "kill_job.py"), str(store)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stored(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM rollouts").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet


def kill_when(process: subprocess.Popen, store: Path, threshold: int, limit_s: float = 600) -> int:
    """SIGKILL the job as soon as the store holds `threshold` rollouts; returns the count it died with."""
    deadline = time.monotonic() + limit_s
    while stored(store) < threshold:
        if process.poll() is not None:
            pytest.fail(f"the job ended (code {process.returncode}) before the kill: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the job made no progress")
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return stored(store)


def rows(store: Path) -> list[tuple]:
    with RolloutStore(store) as db:
        return [tuple(str(r[f]) for f in RESULT_FIELDS) for r in db.iter_rollouts()]


def test_killed_three_times_then_resumed_equals_an_uninterrupted_run(tmp_path) -> None:
    rng = random.Random()
    thresholds = sorted(rng.sample(range(5, TOTAL - 40), 3))
    killed = tmp_path / "killed.sqlite"
    counts = [kill_when(start(killed), killed, threshold) for threshold in thresholds]
    assert all(c < TOTAL for c in counts), f"a kill came after the job finished: {counts}"
    assert counts == sorted(counts) and counts[-1] >= thresholds[-1]
    for process in (start(killed), start(tmp_path / "straight.sqlite")):
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    resumed, straight = rows(killed), rows(tmp_path / "straight.sqlite")
    planned = {(f"kill/{i}", str(k)) for i in range(10) for k in range(50)}
    assert len(resumed) == TOTAL and {(r[0], r[5]) for r in resumed} == planned, f"killed at {counts}"
    assert resumed == straight, f"killed at {counts}"
