"""`anchors resample` end to end: local engine into a store (resumed), TA export, server backend, bad URLs."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

from typer.testing import CliRunner

from anchors.cli import app
from anchors.rollouts.store import RolloutStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from fake_server import FakeServer  # noqa: E402

runner = CliRunner()


def traces_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    rows = [{"id": f"t{i}", "problem": f"What is {i}+2?", "thinking": f"Add them. {i} plus 2 is {i + 2}.",
             "answer_text": f"\\boxed{{{i + 2}}}", "gold_answer": str(i + 2)} for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_resample_with_the_local_engine_resumes_and_exports(tmp_path: Path) -> None:
    store, exported = tmp_path / "r.sqlite", tmp_path / "ta"
    args = ["resample", str(traces_file(tmp_path)), "--model", "tiny-qwen2", "--device", "cpu", "--rollouts", "3",
            "--max-new-tokens", "5", "--store", str(store), "--export-ta", str(exported)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "t0" in first.stdout and f"store: {store}" in first.stdout
    with RolloutStore(store) as db:
        assert db.count() == 2 * 3 * 3  # 2 traces × (2 sentences + the whole thinking) × 3 rollouts
    assert len(json.loads((exported / "t1" / "chunk_1" / "solutions.json").read_text())) == 3
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "rollouts (" not in again.stderr  # nothing left to sample: no progress bar
    with RolloutStore(store) as db:
        assert db.count() == 18


def test_resample_through_an_openai_compatible_server(tmp_path: Path) -> None:
    with FakeServer() as server:
        result = runner.invoke(app, ["resample", str(traces_file(tmp_path)), "--backend", "openai", "--base-url",
                                     server.url, "--model", "fake-model", "--template", "paper", "--rollouts", "2",
                                     "--store", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    assert server.calls[0]["prompt"].startswith("Solve this math problem step by step.")


def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["resample", str(traces_file(tmp_path)), "--backend", "openai", "--base-url",
                                 f"http://127.0.0.1:{port}", "--model", "m", "--template", "paper",
                                 "--store", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2
    assert f"cannot reach http://127.0.0.1:{port}/v1" in result.stderr and "Traceback" not in result.output
