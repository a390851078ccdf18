"""The server backend against a real OpenAI-compatible server: llama-cpp-python's, serving the bundled SmolLM2
GGUF on 127.0.0.1 (installed by the project's own `make install`, like every test dependency)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conformance import check_boxed_stop, check_contract, check_stop_string

from anchors.models.bundled import BUNDLED_MODELS, bundled_gguf_path
from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import SamplingFailed, collect_rollouts
from anchors.rollouts.server import OpenAICompatibleSampler
from anchors.rollouts.store import RolloutStore

pytestmark = pytest.mark.slow
ALIAS = "smollm2"
PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
FORCED = PROMPT + "2 plus 2 makes 4.\n</think>\n\nThe final answer is \\boxed{"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    def __init__(self, log: Path, port: int | None = None) -> None:
        gguf = bundled_gguf_path(BUNDLED_MODELS["smollm2-135m"])
        assert gguf is not None, "the bundled model is not installed: run `make install`"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS,
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "1024", "--n_threads", "1",
                 "--interrupt_requests", "False"],
                stdout=sink, stderr=sink)
        self._wait(log)

    def _wait(self, log: Path, limit_s: float = 300) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        self.kill()
        pytest.fail("llama.cpp server did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    yield running
    running.kill()


def sampler(url: str, **options) -> OpenAICompatibleSampler:
    return OpenAICompatibleSampler([url], ALIAS, server_kind="llama.cpp", backoff_s=0.2, **options)


def test_conformance(server) -> None:
    engine = sampler(server.url)
    assert engine.concurrency == 1 and engine.n_per_request == 1  # the llama.cpp server's limits
    check_contract(engine, [PROMPT, PROMPT + "First,"], max_new_tokens=8, exact=False)
    check_stop_string(sampler(server.url), PROMPT, stop=" ", max_new_tokens=12)


def test_the_seed_reaches_the_server(server) -> None:
    params = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=1.0)

    def texts(seed: int) -> list[str]:
        request = PrefixRequest(key="trace/seed", prompt_text=PROMPT, n=3, seed=seed)
        return [r.text for r in collect_rollouts(sampler(server.url), [request], params, progress=False)["trace/seed"]]

    texts(0)  # after the same call, the server's prompt cache is in the same state for both runs below
    first, second, other = texts(0), texts(0), texts(1)
    assert first == second and first != other


def test_boxed_answer_stop(server) -> None:
    check_boxed_stop(sampler(server.url), FORCED)


def test_generate_through_the_server(server, tmp_path) -> None:
    """`anchors generate --backend openai`: SmolLM2 is no reasoning model, so it rarely closes its thinking within
    the budget; either way the trace has a thinking and a gradable answer, and names the served model."""
    import json

    from typer.testing import CliRunner

    from anchors.cli import app
    from anchors.rollouts.generate import ANSWER_STEM

    out = tmp_path / "traces.jsonl"
    result = CliRunner().invoke(app, ["generate", "--backend", "openai", "--base-url", server.url, "--model", ALIAS,
                                      "--server-kind", "llama.cpp", "--problem", "What is 2+2?", "--id", "two",
                                      "--max-new-tokens", "24", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (trace,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert trace["model"] == ALIAS and trace["template"] == "r1-distill" and trace["thinking"].strip()
    closed_by = trace["metadata"]["think_closed_by"]
    assert closed_by in ("model", "anchors")
    if closed_by == "anchors":
        assert trace["answer_text"].startswith(ANSWER_STEM)


def test_wrong_model_name_is_a_clear_error(server) -> None:
    from anchors.rollouts.server import ServerError

    with pytest.raises(ServerError, match=rf"{server.url} serves \['{ALIAS}'\], not 'smollm3'"):
        OpenAICompatibleSampler([server.url], "smollm3").check()


def test_server_killed_mid_job_keeps_the_finished_rollouts_and_a_restart_completes_them(tmp_path) -> None:
    running = LlamaServer(tmp_path / "server.log")
    store = tmp_path / "r.sqlite"
    requests = [PrefixRequest(key=f"t/{i}", prompt_text=PROMPT + "Step", n=2, seed=i) for i in range(6)]
    params = SamplingParams(max_new_tokens=16)

    def stored() -> int:
        try:
            with sqlite3.connect(store, timeout=5) as connection:
                return int(connection.execute("SELECT count(*) FROM rollouts").fetchone()[0])
        except sqlite3.Error:
            return 0  # not created yet

    def kill_after_two() -> None:
        while stored() < 2:
            time.sleep(0.05)
        running.kill()

    killer = threading.Thread(target=kill_after_two, daemon=True)
    killer.start()
    with pytest.raises(SamplingFailed) as caught:
        collect_rollouts(sampler(running.url, concurrency=1, max_retries=2), requests, params, store=store,
                         progress=False)
    killer.join(timeout=30)
    message = str(caught.value)
    assert running.url in message and "after 3 attempts" in message, message
    with RolloutStore(store) as db:
        kept = db.count()
    assert 2 <= kept < 12
    restarted = LlamaServer(tmp_path / "server.log", port=running.port)
    try:
        out = collect_rollouts(sampler(restarted.url), requests, params, store=store, progress=False)
    finally:
        restarted.kill()
    assert sum(len(v) for v in out.values()) == 12 and all(r.ok for v in out.values() for r in v)
