"""The LLM labeller against a scripted in-process OpenAI-compatible server (http.server in a thread).

Each test scripts what the "model" answers; the labeller must repair, retry or fall back to `unknown` with a
warning, and never crash on bad output.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from anchors.labels import EndpointConfig, EndpointError, LabelWarning, LLMConfig, LLMLabeller, label_sentences
from anchors.traces.taxonomy import UNKNOWN

SENTENCES = [
    "Okay, so I need to find the sum of the first ten odd numbers.",
    "Let me think about how to approach this.",
    "I remember that the sum of the first n odd numbers is n squared.",
    "So the sum is 10^2 = 100.",
    "Wait, let me double-check with a small case.",
    "1 + 3 + 5 = 9 = 3^2, correct.",
    "**Final Answer** \\boxed{100}",
]
GOOD_TAGS = ["problem_setup", "plan_generation", "fact_retrieval", "active_computation", "uncertainty_management",
             "self_checking", "final_answer_emission"]
Script = Callable[[dict[str, Any], int], tuple[int, Any]]


class FakeServer:
    """Answers POST /v1/chat/completions with whatever `script(request_body, call_number)` returns."""

    def __init__(self, script: Script) -> None:
        self.script, self.requests, self.headers = script, [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                status, payload = server.script(body, len(server.requests))
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Script], FakeServer]]:
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path / "cache"))
    servers: list[FakeServer] = []

    def start(script: Script) -> FakeServer:
        server = FakeServer(script)
        server.thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.httpd.shutdown()
        server.httpd.server_close()


@contextlib.contextmanager
def expect_warning(pattern: str) -> Iterator[None]:
    """At least one LabelWarning matching `pattern` (every LabelWarning is captured, none leaks into the report)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages = [str(w.message) for w in caught if issubclass(w.category, LabelWarning)]
    assert any(re.search(pattern, m) for m in messages), messages


def chat(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


def asked_indices(body: dict[str, Any]) -> list[int]:
    """The sentence indices a request asks to label (from the prompt's SENTENCES TO LABEL block or a repair turn)."""
    last = body["messages"][-1]["content"]
    if last.startswith("Your reply could not be used"):
        return [int(i) for i in last.rsplit(":", 1)[1].strip(" .").split(", ")]
    block = last.split("SENTENCES TO LABEL:")[1]
    return [int(i) for i in re.findall(r"^\[(\d+)\]", block, flags=re.MULTILINE)]


def good_reply(body: dict[str, Any], tags: list[str] = GOOD_TAGS) -> str:
    items = [{"index": i, "function_tags": [tags[i % len(tags)]], "depends_on": [i - 1] if i else []}
             for i in asked_indices(body)]
    return json.dumps({"sentences": items})


def labeller_for(server: FakeServer, **overrides: Any) -> LLMLabeller:
    endpoint = EndpointConfig(base_url=server.base_url, model="fake", backoff_s=0.0,
                              **{k: overrides.pop(k) for k in list(overrides) if k in ("max_retries", "response_format", "api_key_env")})
    return LLMLabeller(LLMConfig(endpoint=endpoint, **overrides))


def test_well_formed_reply_gives_tags_and_dependencies(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda body, n: (200, chat(good_reply(body))))
    result = labeller_for(server).label(SENTENCES, problem="Sum of the first ten odd numbers?", trace_id="t1")
    assert list(result.tags) == GOOD_TAGS
    assert result.depends_on is not None and result.depends_on[3] == (2,)
    assert result.warnings == ()
    body = server.requests[0]
    assert body["model"] == "fake" and body["response_format"]["type"] == "json_schema"
    assert "Sum of the first ten odd numbers?" in body["messages"][1]["content"]
    assert all(tag in body["messages"][0]["content"] for tag in GOOD_TAGS)


def test_prose_instead_of_json_is_repaired_by_asking_again(serve: Callable[[Script], FakeServer]) -> None:
    def script(body: dict[str, Any], n: int) -> tuple[int, Any]:
        return (200, chat("Sure! Sentence 0 sets up the problem, sentence 1 plans...")) if n == 1 else (200, chat(good_reply(body)))

    server = serve(script)
    with expect_warning("not JSON"):
        result = labeller_for(server).label(SENTENCES)
    assert list(result.tags) == GOOD_TAGS
    assert len(server.requests) == 2
    repair = server.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and repair[-1]["content"].startswith("Your reply could not be used")


def test_json_wrapped_in_prose_and_fences_is_extracted_without_a_retry(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda body, n: (200, chat("Here are the labels:\n```json\n" + good_reply(body) + "\n```\nHope this helps.")))
    result = labeller_for(server).label(SENTENCES)
    assert list(result.tags) == GOOD_TAGS and len(server.requests) == 1


def test_prose_forever_marks_every_sentence_unknown_with_a_warning_and_is_not_cached(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda body, n: (200, chat("I cannot label these sentences.")))
    with expect_warning("no usable label for 7 sentence"):
        result = labeller_for(server, repair_attempts=2).label(SENTENCES)
    assert set(result.tags) == {UNKNOWN} and len(server.requests) == 3
    with expect_warning("not JSON"):
        labeller_for(server, repair_attempts=0).label(SENTENCES)
    assert len(server.requests) == 4  # the failed result was not cached


def test_missing_sentences_are_asked_for_again_and_only_those(serve: Callable[[Script], FakeServer]) -> None:
    def script(body: dict[str, Any], n: int) -> tuple[int, Any]:
        if n == 1:  # drops sentences 2 and 5
            items = json.loads(good_reply(body))["sentences"]
            return 200, chat(json.dumps({"sentences": [i for i in items if i["index"] not in (2, 5)]}))
        return 200, chat(good_reply(body))

    server = serve(script)
    with expect_warning(r"missing or unusable in the reply \[2, 5\]"):
        result = labeller_for(server).label(SENTENCES)
    assert list(result.tags) == GOOD_TAGS
    assert asked_indices(server.requests[1]) == [2, 5]


def test_missing_sentences_that_never_come_back_become_unknown(serve: Callable[[Script], FakeServer]) -> None:
    def script(body: dict[str, Any], n: int) -> tuple[int, Any]:
        items = [i for i in json.loads(good_reply(body))["sentences"] if i["index"] != 4]
        return 200, chat(json.dumps({"sentences": items}))

    server = serve(script)
    with expect_warning(r"no usable label for 1 sentence\(s\) \[4\]"):
        result = labeller_for(server).label(SENTENCES)
    assert result.tags[4] == UNKNOWN
    assert [t for i, t in enumerate(result.tags) if i != 4] == [t for i, t in enumerate(GOOD_TAGS) if i != 4]


def test_unknown_and_misspelt_tags_are_mapped_or_dropped(serve: Callable[[Script], FakeServer]) -> None:
    reply = {"sentences": [
        {"index": 0, "function_tags": ["Problem Setup"]},
        {"index": 1, "function_tags": ["planning_stuff", "plan-generation"]},
        {"index": 2, "tags": "fact_retrieval"},
        {"index": 3, "function_tags": ["computation"]},
        {"index": 4, "function_tags": ["vibes"]},
        {"index": "5", "function_tags": ["self_checking"], "depends_on": [9, 3, "2"]},
        {"index": 6, "function_tags": ["final_answer_emission"]},
    ]}
    server = serve(lambda body, n: (200, chat(json.dumps(reply))))
    with expect_warning("unknown tag"):
        result = labeller_for(server, repair_attempts=0).label(SENTENCES)
    assert list(result.tags) == ["problem_setup", "plan_generation", "fact_retrieval", "active_computation", UNKNOWN,
                                 "self_checking", "final_answer_emission"]
    assert result.depends_on is not None and result.depends_on[5] == (2, 3)  # 9 points forward: dropped
    assert any("'vibes'" in w for w in result.warnings)


@pytest.mark.parametrize("reply", [
    [["problem_setup"], ["plan_generation"], ["fact_retrieval"], ["active_computation"], ["uncertainty_management"],
     ["self_checking"], ["final_answer_emission"]],
    {str(i): {"function_tags": [t]} for i, t in enumerate(GOOD_TAGS)},
    {"labels": [{"chunk_idx": i, "tag": t} for i, t in enumerate(GOOD_TAGS)]},
])
def test_other_common_reply_shapes_are_accepted(serve: Callable[[Script], FakeServer], reply: Any) -> None:
    server = serve(lambda body, n: (200, chat(json.dumps(reply))))
    assert list(labeller_for(server).label(SENTENCES).tags) == GOOD_TAGS


def test_5xx_and_429_are_retried_with_a_warning(serve: Callable[[Script], FakeServer]) -> None:
    def script(body: dict[str, Any], n: int) -> tuple[int, Any]:
        if n == 1:
            return 503, {"error": {"message": "model is loading"}}
        if n == 2:
            return 429, {"error": "slow down"}
        return 200, chat(good_reply(body))

    server = serve(script)
    with expect_warning("HTTP 503 model is loading; retrying"):
        result = labeller_for(server, max_retries=3).label(SENTENCES)
    assert list(result.tags) == GOOD_TAGS and len(server.requests) == 3


def test_a_server_that_keeps_failing_raises_a_clear_error(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda body, n: (500, "internal error"))
    with expect_warning(""), pytest.raises(EndpointError, match="no usable response after 3 tries"):
        labeller_for(server, max_retries=2).label(SENTENCES)


def test_unreachable_endpoint_raises_endpoint_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_CACHE", str(tmp_path))
    endpoint = EndpointConfig(base_url="http://127.0.0.1:9/v1", max_retries=0, timeout_s=2)
    with pytest.raises(EndpointError, match="connection failed"):
        LLMLabeller(LLMConfig(endpoint=endpoint)).label(SENTENCES)


def test_rejected_structured_output_steps_down_until_accepted(serve: Callable[[Script], FakeServer]) -> None:
    def script(body: dict[str, Any], n: int) -> tuple[int, Any]:
        format_ = body.get("response_format", {})
        if format_.get("type") == "json_schema":
            return 422, {"detail": [{"msg": "Input should be 'text' or 'json_object'"}]}
        if "schema" in format_:
            return 400, {"error": {"message": "unknown field response_format.schema"}}
        return 200, chat(good_reply(body))

    server = serve(script)
    labeller = labeller_for(server)
    with expect_warning("rejected response_format='json_schema'"):
        assert list(labeller.label(SENTENCES).tags) == GOOD_TAGS
    assert [r.get("response_format", {}).get("type") for r in server.requests] == ["json_schema", "json_object", "json_object"]
    assert server.requests[-1]["response_format"] == {"type": "json_object"}
    assert labeller.client.response_format == "json_object"
    labeller.label(SENTENCES, problem="another")
    assert server.requests[-1]["response_format"] == {"type": "json_object"} and len(server.requests) == 4


def test_a_rejected_plain_request_is_an_error_not_a_loop(serve: Callable[[Script], FakeServer]) -> None:
    server = serve(lambda body, n: (400, {"error": {"message": "model 'fake' not found"}}))
    with expect_warning(""), pytest.raises(EndpointError, match="model 'fake' not found"):
        labeller_for(server).label(SENTENCES)
    assert len(server.requests) == 4  # json_schema, json_object_schema, json_object, none


def test_401_names_the_key_variable_without_showing_the_key(serve: Callable[[Script], FakeServer],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANCHORS_LABEL_API_KEY", "sk-wrong-key-456")
    server = serve(lambda body, n: (401, {"error": {"message": "invalid api key"}}))
    with pytest.raises(EndpointError, match="HTTP 401.*api_key_env") as error:
        labeller_for(server).label(SENTENCES)
    assert "sk-wrong-key-456" not in str(error.value) and len(server.requests) == 1


def test_long_traces_are_batched_with_context(serve: Callable[[Script], FakeServer]) -> None:
    sentences = [f"Step {i}: 2 * {i} = {2 * i}." for i in range(23)]
    server = serve(lambda body, n: (200, chat(good_reply(body))))
    result = labeller_for(server, batch_size=10, context_sentences=2).label(sentences)
    assert len(server.requests) == 3
    assert [asked_indices(r) for r in server.requests] == [list(range(10)), list(range(10, 20)), list(range(20, 23))]
    second = server.requests[1]["messages"][1]["content"]
    assert "EARLIER SENTENCES" in second and "[8] Step 8" in second and "[7] Step 7" not in second
    assert len(result.tags) == 23 and UNKNOWN not in result.tags


def test_results_are_cached_by_trace_model_and_prompt(serve: Callable[[Script], FakeServer], tmp_path: Path) -> None:
    server = serve(lambda body, n: (200, chat(good_reply(body))))
    first = labeller_for(server).label(SENTENCES, problem="p")
    again = labeller_for(server).label(SENTENCES, problem="p")
    assert len(server.requests) == 1 and again.tags == first.tags and again.depends_on == first.depends_on
    labeller_for(server).label(SENTENCES, problem="another problem")
    LLMLabeller(LLMConfig(endpoint=EndpointConfig(base_url=server.base_url, model="other"))).label(SENTENCES, problem="p")
    labeller_for(server, use_cache=False).label(SENTENCES, problem="p")
    assert len(server.requests) == 4
    assert len(list((tmp_path / "cache" / "labels").glob("*.json"))) == 3


def test_api_key_comes_from_the_environment_and_is_never_cached(serve: Callable[[Script], FakeServer], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LABEL_KEY", "sk-test-secret-123")
    server = serve(lambda body, n: (200, chat(good_reply(body))))
    labeller_for(server, api_key_env="MY_LABEL_KEY").label(SENTENCES)
    assert server.headers[0]["Authorization"] == "Bearer sk-test-secret-123"
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert "sk-test-secret-123" not in path.read_text()


def test_label_sentences_uses_the_endpoint_from_the_environment(serve: Callable[[Script], FakeServer],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(lambda body, n: (200, chat(good_reply(body))))
    monkeypatch.setenv("ANCHORS_LABEL_BASE_URL", server.base_url)
    monkeypatch.setenv("ANCHORS_LABEL_MODEL", "from-env")
    result = label_sentences(SENTENCES)
    assert result.labeller.startswith("llm:from-env") and list(result.tags) == GOOD_TAGS
    assert server.requests[0]["model"] == "from-env"
    assert label_sentences(SENTENCES, labeller="offline").labeller.startswith("offline:")


def test_a_damaged_cache_entry_is_recomputed(serve: Callable[[Script], FakeServer], tmp_path: Path) -> None:
    server = serve(lambda body, n: (200, chat(good_reply(body))))
    labeller_for(server).label(SENTENCES)
    (entry,) = (tmp_path / "cache" / "labels").glob("*.json")
    entry.write_text('{"schema_version": 1, "tags": [')
    assert list(labeller_for(server).label(SENTENCES).tags) == GOOD_TAGS and len(server.requests) == 2


def test_repairs_are_reported_with_the_trace_id(serve: Callable[[Script], FakeServer]) -> None:
    reply = {"sentences": [{"index": i, "function_tags": ["vibes" if i == 0 else t]} for i, t in enumerate(GOOD_TAGS)]}
    server = serve(lambda body, n: (200, chat(json.dumps(reply))))
    with expect_warning(r"^trace 'abc': sentence 0: unknown tag\(s\) 'vibes' dropped"):
        result = labeller_for(server, repair_attempts=0).label(SENTENCES, trace_id="abc")
    assert result.tags[0] == UNKNOWN and result.warnings[0].startswith("trace 'abc': ")
