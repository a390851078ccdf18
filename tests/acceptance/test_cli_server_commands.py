"""`anchors generate` and `anchors causality` through an OpenAI-compatible server (the scripted one on 127.0.0.1):
the prompts each command sends, and what it makes of the replies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from anchors.cli import app
from anchors.models.templates import FORCED_ANSWER_SUFFIX, make_template
from anchors.results import read_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from fake_server import FakeServer  # noqa: E402

runner = CliRunner()
PROBLEM = "What is 3+4?"


def thinks_then_answers(server: FakeServer, body: dict[str, Any]) -> tuple[int, Any]:
    """A reasoning model: asked to think, it thinks and closes its thinking (trimming the stop string and naming it
    in `stop_reason`, as vLLM does); after a closed thinking it answers 7 in a box."""
    prompt = body["prompt"]
    text = " 7}." if prompt.endswith("\\boxed{") else "\n\nThe answer is \\boxed{7}." if prompt.endswith("</think>") \
        else "Three plus four is seven. So it is 7.\n"
    stopped = "</think>" if "</think>" in body.get("stop", []) else None
    choices = [{"index": j, "text": text, "finish_reason": "stop", "stop_reason": stopped, "logprobs": None}
               for j in range(body["n"])]
    return 200, {"object": "text_completion", "model": body["model"], "choices": choices,
                 "usage": {"prompt_tokens": 5, "completion_tokens": 6 * body["n"]}}


def test_generate_through_a_server(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    with FakeServer(thinks_then_answers) as server:
        result = runner.invoke(app, ["generate", "--backend", "openai", "--base-url", server.url, "--model", "fake-model",
                                     "--problem", PROBLEM, "--id", "sum", "--gold", "7", "--max-new-tokens", "40",
                                     "--seed", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (trace,) = [json.loads(line) for line in out.read_text().splitlines()]
    template = make_template("r1-distill", "fake-model")  # a server and no --template: the R1-distill format
    thinking = "Three plus four is seven. So it is 7.\n"
    assert trace["id"] == "sum" and trace["model"] == "fake-model" and trace["template"] == template.name
    assert trace["thinking"] == thinking and trace["answer_text"] == "\n\nThe answer is \\boxed{7}."
    assert trace["metadata"]["think_closed_by"] == "model"
    thought, answer = server.calls
    assert thought["prompt"] == template.render(PROBLEM) and "</think>" in thought["stop"]
    assert thought["max_tokens"] == 40 and thought["n"] == 1
    assert answer["prompt"] == template.render(PROBLEM, thinking + "</think>") and "stop" not in answer
    assert thought["seed"] != answer["seed"]  # the answer is sampled with its own seed (--seed + 1), as locally


def test_generate_rejects_server_options_on_a_local_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--model", "tiny-qwen2", "--base-url", "http://127.0.0.1:9/v1",
                                 "--problem", PROBLEM, "--out", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 2 and "--base-url is for --backend openai" in result.stderr
    assert not (tmp_path / "t.jsonl").exists()


def test_causality_early_answering_through_a_server(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"id": "sum", "problem": PROBLEM, "thinking": "Three plus four.\nThat is 7.",
                                  "answer_text": "\\boxed{7}", "gold_answer": "7"}) + "\n")
    with FakeServer(thinks_then_answers) as server:
        result = runner.invoke(app, ["causality", str(traces), "--tests", "early", "--backend", "openai", "--base-url",
                                     server.url, "--model", "fake-model", "--samples", "2", "--points", "2",
                                     "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (points,) = [r.tables["early_answering"] for r in read_results(tmp_path / "out")]
    assert points["k"].tolist() == [0, 2] and (points["n_samples"] == 2).all()
    assert (points["n_answered"] == 2).all()  # every forced answer read as the boxed 7
    assert server.calls and all(call["prompt"].endswith(FORCED_ANSWER_SUFFIX) for call in server.calls)
