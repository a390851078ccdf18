"""The Ray backend on a real local Ray cluster (loopback only, no dashboard), tiny-Qwen2 engines as actors.

What is promised and checked exactly: a Ray run's rollouts depend only on its work units (cut from the request
list), so on one machine with one thread count they are bit-identical to an in-process run of the same units —
with 2 workers, after a worker is killed mid-run, and after the driver is killed and rerun. A run with one unit is
bit-identical to the plain engine on the whole list. Against the plain engine with several units, the batch layout
differs, so only the planned keys and seeds are promised to match (the floats may differ in the last bits).

One cluster for the module (Ray starts in seconds, workers load torch in more): 4 logical CPUs, so the module's
2 workers and a driver process's 2 can coexist (they are idle most of the time; the machine may have 2 cores).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devices import cpu_only
from ray_job import BATCH_SIZE, PARAMS, PER_UNIT, THREADS, job_requests, ray_sampler
from typer.testing import CliRunner

from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.store import RolloutStore

HERE = Path(__file__).parent
RAY_MISSING = importlib.util.find_spec("ray") is None
if RAY_MISSING and os.environ.get("ANCHORS_REQUIRE_RAY") == "1":
    raise RuntimeError("ANCHORS_REQUIRE_RAY=1 but ray is not installed: pip install -e '.[dev]'")
pytestmark = [cpu_only, pytest.mark.skipif(RAY_MISSING, reason="ray is not installed (pip install 'anchors[ray]')")]
TOTAL = 80
FIELDS = ("request_key", "sampler", "params", "prompt_hash", "request_seed", "idx", "seed", "text", "token_ids",
          "finish_reason", "prompt_tokens", "completion_tokens", "logprobs")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from anchors.rollouts.cluster import connect

    connect("local", cpus=4)
    import ray

    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def engine():
    """The in-process engine, with the workers' thread count (restored afterwards for the other tests)."""
    import torch

    from anchors.models import load_model
    from anchors.rollouts.local import LocalEngine

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield LocalEngine(load_model("tiny-qwen2", device="cpu"), batch_size=BATCH_SIZE)
    torch.set_num_threads(threads)


class InProcessUnits:
    """The reference: the same work units as the Ray sampler, one after another on one in-process engine."""

    def __init__(self, engine, per_unit: int) -> None:
        self.engine, self.per_unit, self.identity = engine, per_unit, engine.identity

    def sample(self, requests, params):
        from anchors.rollouts.cluster import work_units

        for unit in work_units(requests, self.per_unit):
            yield from self.engine.sample([requests[i] for i in unit], params)


def rows(store: Path) -> list[tuple]:
    with RolloutStore(store) as db:
        return [tuple(str(r[f]) for f in FIELDS) for r in db.iter_rollouts()]


def planned(rows_: list[tuple]) -> list[tuple]:
    return [(r[0], r[5], r[6]) for r in rows_]  # key, index, seed


@pytest.fixture(scope="module")
def reference(engine, tmp_path_factory) -> list[tuple]:
    store = tmp_path_factory.mktemp("reference") / "units.sqlite"
    collect_rollouts(InProcessUnits(engine, PER_UNIT), job_requests(), PARAMS, store=store, progress=False)
    found = rows(store)
    assert len(found) == TOTAL
    return found


@pytest.fixture(scope="module")
def sampler(cluster):
    opened = ray_sampler(workers=2)
    yield opened
    opened.close()


def test_two_workers_give_the_in_process_run_of_the_same_units(sampler, reference, engine, tmp_path) -> None:
    assert sampler.identity == engine.identity  # so Ray and in-process runs share store rows
    collect_rollouts(sampler, job_requests(), PARAMS, store=tmp_path / "ray.sqlite", progress=False)
    assert rows(tmp_path / "ray.sqlite") == reference  # bit-identical: same unit request lists, batch size, threads
    assert all(worker["tasks"] >= 1 for worker in sampler.workers) and len(sampler.workers) == 2
    plain = tmp_path / "plain.sqlite"
    collect_rollouts(engine, job_requests(), PARAMS, store=plain, progress=False)
    assert planned(rows(plain)) == planned(reference)  # another batch layout: the same keys and seeds


def test_one_unit_on_a_worker_equals_the_plain_engine_bit_for_bit(cluster, engine, tmp_path) -> None:
    plain, ray_run = tmp_path / "plain.sqlite", tmp_path / "ray.sqlite"
    collect_rollouts(engine, job_requests(), PARAMS, store=plain, progress=False)
    whole = ray_sampler(workers=1, rollouts_per_unit=10**6)
    try:
        collect_rollouts(whole, job_requests(), PARAMS, store=ray_run, progress=False)
    finally:
        whole.close()
    assert rows(ray_run) == rows(plain)


class KillsAWorker:
    """Passes the Ray sampler's rollouts on; when the first unit's have arrived, SIGKILLs one worker process
    (by its pid) while it holds units in flight."""

    def __init__(self, sampler) -> None:
        self.sampler, self.identity, self.killed = sampler, sampler.identity, None

    def sample(self, requests, params):
        for count, rollout in enumerate(self.sampler.sample(requests, params), 1):
            if count == PER_UNIT:
                self.killed = self.sampler.workers[0]["pid"]
                os.kill(self.killed, signal.SIGKILL)
            yield rollout


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(sampler, reference, tmp_path) -> None:
    lost_before = sampler.lost
    killing = KillsAWorker(sampler)
    store = tmp_path / "killed.sqlite"
    got = collect_rollouts(killing, job_requests(), PARAMS, store=store, progress=False)
    assert sampler.lost == lost_before + 1 and killing.killed not in [w["pid"] for w in sampler.workers]
    assert sum(len(v) for v in got.values()) == TOTAL
    found = rows(store)
    assert len(found) == len(set(planned(found))) == TOTAL  # none lost, none twice
    assert found == reference  # the lost worker's units, sampled again elsewhere, are the same rollouts


def stored(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM rollouts").fetchone()[0])
    except sqlite3.Error:
        return 0


def driver(store: Path, address: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "ray_job.py"), str(store), address], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_killed_driver_reruns_and_resumes(cluster, reference, tmp_path) -> None:
    store = tmp_path / "driver.sqlite"
    process = driver(store, cluster)
    deadline = time.monotonic() + 300
    while stored(store) < 15:  # past the first unit and into the second (or further)
        if process.poll() is not None:
            pytest.fail(f"the driver ended (code {process.returncode}) before the kill: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the driver made no progress")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = stored(store)
    assert at_kill < TOTAL, "the kill came after the job finished"
    rerun = driver(store, cluster)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    assert rows(store) == reference, f"killed with {at_kill} rollouts stored"


def test_the_cli_samples_on_the_cluster_into_the_same_store_rows(cluster, tmp_path) -> None:
    import json

    import ray

    from anchors.cli import app

    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"id": "a-1", "problem": "What is 1 + 1?", "thinking": "One and one. That is two.",
                                  "answer_text": "\\boxed{2}", "gold_answer": "2"}) + "\n")
    common = ["resample", str(traces), "--model", "tiny-qwen2", "--device", "cpu", "--rollouts", "3",
              "--max-new-tokens", "4"]
    runner = CliRunner()
    free = ray.available_resources().get("CPU", 0)
    local = runner.invoke(app, [*common, "--store", str(tmp_path / "local.sqlite")])
    on_ray = runner.invoke(app, [*common, "--store", str(tmp_path / "ray.sqlite"), "--ray", "local",
                                 "--ray-workers", "1"])
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    assert planned(rows(tmp_path / "ray.sqlite")) == planned(rows(tmp_path / "local.sqlite")) != []
    with RolloutStore(tmp_path / "ray.sqlite") as db:
        record = db.provenance(next(db.iter_rollouts())["provenance"])
    assert record["cluster"]["workers"] == 1 and record["engine"] == "anchors.local"
    deadline = time.monotonic() + 30  # the command stopped its worker: its CPU is free again
    while ray.available_resources().get("CPU", 0) < free and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == free
