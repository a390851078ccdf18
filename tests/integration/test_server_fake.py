"""The server backend against a scripted OpenAI-compatible server: retries, failures, bad input, several servers."""

from __future__ import annotations

import socket

import pytest
from conformance import check_contract
from fake_server import FakeServer, echo

from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.factory import make_sampler
from anchors.rollouts.jobs import SamplingFailed, collect_rollouts
from anchors.rollouts.server import OpenAICompatibleSampler, ServerError
from anchors.rollouts.store import RolloutStore

PARAMS = SamplingParams(max_new_tokens=8)


def sampler(*urls: str, **options) -> OpenAICompatibleSampler:
    return OpenAICompatibleSampler(list(urls), "fake-model", backoff_s=0.01, **options)


def requests(traces: int = 2, n: int = 4) -> list[PrefixRequest]:
    return [PrefixRequest(key=f"trace{t}/resample/{i}", prompt_text=f"p{t}.{i}", n=n, seed=t * 10 + i)
            for t in range(traces) for i in range(2)]


def test_conformance_and_neutral_sampling_fields() -> None:
    with FakeServer() as server:
        check_contract(sampler(server.url, n_per_request=2), ["a", "b"])
        body = server.calls[0]
        sizes = {c["n"] for c in server.calls}
    assert body["top_k"] == -1 and body["min_p"] == 0.0 and body["repetition_penalty"] == 1.0
    assert body["prompt"] in ("a", "b") and body["max_tokens"] == 12 and sizes == {1, 2}  # units [0, 2), [2, 3)


def test_retries_on_503_and_429_then_succeeds() -> None:
    def flaky(server, body):
        if len(server.calls) <= 2:
            return 503, {"error": {"message": "overloaded"}}
        if len(server.calls) == 3:
            return 429, {"error": {"message": "slow down"}}
        return echo(server, body)

    with FakeServer(flaky) as server:
        out = collect_rollouts(sampler(server.url, concurrency=1), requests(1, 2), PARAMS, progress=False)
    assert all(r.ok for v in out.values() for r in v) and len(server.calls) == 5


def test_garbage_json_fails_those_rollouts_clearly_and_keeps_the_others(tmp_path) -> None:
    def garbage_for_trace1(server, body):
        return (200, "<html>proxy error</html>") if body["prompt"].startswith("p1") else echo(server, body)

    store = tmp_path / "r.sqlite"
    with FakeServer(garbage_for_trace1) as server:
        with pytest.raises(SamplingFailed) as caught:
            collect_rollouts(sampler(server.url), requests(), PARAMS, store=store, progress=False)
    message = str(caught.value)
    assert server.url in message and "not an OpenAI completions response" in message and "<html>proxy" in message
    with RolloutStore(store) as db:
        assert db.count() == 8  # trace0's two requests × 4 rollouts, kept


def test_unreachable_url_and_wrong_model_name_are_clear_errors() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(ServerError, match=rf"cannot reach http://127.0.0.1:{closed_port}/v1 .*server running"):
        collect_rollouts(sampler(f"http://127.0.0.1:{closed_port}"), requests(), PARAMS, progress=False)
    with FakeServer(models=("other-model",)) as server:
        with pytest.raises(ServerError, match=r"serves \['other-model'\], not 'fake-model'"):
            collect_rollouts(sampler(server.url), requests(), PARAMS, progress=False)
        assert server.calls == []


def test_a_rejected_call_is_not_retried_and_names_the_server() -> None:
    def too_long(server, body):
        return 400, {"error": {"message": "This model's maximum context length is 2048 tokens"}}

    with FakeServer(too_long) as server:
        with pytest.raises(SamplingFailed, match=rf"{server.url} refused the call: HTTP 400: .*maximum context length"):
            collect_rollouts(sampler(server.url), requests(1, 2), PARAMS, progress=False)
    assert len(server.calls) == 2  # one per request, no retries


def test_a_server_that_dies_mid_job_fails_the_rest_quickly_and_keeps_the_finished(tmp_path) -> None:
    def dies_after_three(server, body):
        if len(server.calls) == 3:
            server.dead = True
        return (503, {"error": {"message": "gone"}}) if getattr(server, "dead", False) else echo(server, body)

    store = tmp_path / "r.sqlite"
    many = [PrefixRequest(key=f"t/{i}", prompt_text=f"p{i}", n=2, seed=i) for i in range(8)]
    with FakeServer(dies_after_three) as server:
        with pytest.raises(SamplingFailed) as caught:
            collect_rollouts(sampler(server.url, concurrency=1, max_retries=2), many, PARAMS, store=store,
                             progress=False)
    message = str(caught.value)
    assert message.startswith(f"12 rollout(s) failed: {server.url}") and "the others are stored" in message
    assert "no answer after 3 attempts (last: HTTP 503: gone)" in message
    # two units exhaust their retries, then the server counts as down and the rest fail without waiting
    assert len(server.calls) == 2 + 3 + 3
    with RolloutStore(store) as db:
        assert db.count() == 4


def test_api_key_comes_from_the_environment_and_is_never_stored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ANCHORS_TEST_KEY", "sk-secret-123")
    store = tmp_path / "r.sqlite"
    with FakeServer() as server:
        engine = make_sampler("fake-model", server_urls=[server.url], api_key_env="ANCHORS_TEST_KEY")
        collect_rollouts(engine, requests(1, 2), PARAMS, store=store, progress=False)
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in engine.identity and "sk-secret" not in str(engine.provenance())
    with RolloutStore(store):
        pass
    assert all(b"sk-secret" not in path.read_bytes() for path in tmp_path.iterdir())


def test_work_goes_to_every_server_by_prefix_block_not_by_trace() -> None:
    with FakeServer() as first, FakeServer() as second:
        collect_rollouts(sampler(first.url, second.url, concurrency=1), requests(traces=1), PARAMS, progress=False)
        by_server = [[c["prompt"] for c in s.calls] for s in (first, second)]
    assert sorted(by_server) == [["p0.0"], ["p0.1"]]  # one trace's two prefix blocks, one on each server


def test_the_units_of_a_server_that_goes_down_are_handed_to_the_other(tmp_path) -> None:
    def dies_at_once(server, body):
        return 503, {"error": {"message": "gone"}}

    store = tmp_path / "r.sqlite"
    many = [PrefixRequest(key=f"t/{i}", prompt_text=f"p{i}", n=2, seed=i) for i in range(8)]
    with FakeServer(dies_at_once) as dead, FakeServer() as alive:
        got = collect_rollouts(sampler(dead.url, alive.url, concurrency=2, max_retries=1), many, PARAMS, store=store,
                               progress=False)
        answered = sorted(c["prompt"] for c in alive.calls)
    assert all(r.ok for v in got.values() for r in v) and sum(map(len, got.values())) == 16
    assert answered == sorted(f"p{i}" for i in range(8))  # every unit, the dead server's two first ones included
    # its two slots each tried a unit twice; before the second gave up, a slot could start one more: then down
    assert 4 <= len(dead.calls) <= 5


def test_concurrency_bounds_the_calls_in_flight_per_server() -> None:
    import threading
    import time

    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow(server, body):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return echo(server, body)

    with FakeServer(slow) as server:
        collect_rollouts(sampler(server.url, concurrency=3, n_per_request=1), requests(2, 4), PARAMS, progress=False)
        calls = len(server.calls)
    assert calls == 16 and most[0] == 3


def test_server_stop_reasons_and_boxed_answers_read_like_the_local_engine() -> None:
    def vllm_like(server, body):
        texts = [(" 4} and more text", "length", None), (" then", "stop", "\n\n"), (" end", "stop", None)]
        return 200, {"choices": [{"index": j, "text": t, "finish_reason": f, "stop_reason": s}
                                 for j, (t, f, s) in enumerate(texts)]}

    forced = PrefixRequest(key="t/0", prompt_text="<think>\nx\n</think>\nSo \\boxed{", n=3, seed=0)
    with FakeServer(vllm_like) as server:
        got = collect_rollouts(sampler(server.url, n_per_request=3), [forced],
                               SamplingParams(max_new_tokens=8, stop=("\n\n",)), progress=False)["t/0"]
    assert [(r.text, r.finish_reason) for r in got] == [(" 4}", "stop"), (" then\n\n", "stop"), (" end", "eos")]
