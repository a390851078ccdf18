"""What a user sees while `anchors score` works, in a real terminal 80 columns wide: one bar per trace naming the
trace and its phase, with the count and an ETA that fit; no third-party bars."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def run_in_terminal(args: list[str], columns: int = 80) -> str:
    """Run a command with a pseudo-terminal as its stdout and stderr (so rich draws live bars); all it printed."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
    process = subprocess.Popen(args, stdout=child, stderr=child, stdin=subprocess.DEVNULL, env=env, close_fds=True)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=600)
    os.close(main)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_score_progress_fits_80_columns(tmp_path: Path) -> None:
    traces = tmp_path / "one.jsonl"
    traces.write_text(json.dumps({"id": "arith-25-with-a-rather-long-name", "problem": "What is 12 - 5 + 8?",
                                  "thinking": "First, 12 - 5 = 7.\n\nThen 7 + 8 = 15. So the answer is 15.",
                                  "answer_text": "\n\nThe answer is \\boxed{15}."}) + "\n")
    output = run_in_terminal([sys.executable, "-m", "anchors.cli", "score", str(traces), "--model", "tiny-qwen2",
                              "--device", "cpu", "--rollouts", "2", "--max-new-tokens", "6", "--bootstrap", "20",
                              "--tags", "none", "--out", str(tmp_path / "out")])
    frames = [ANSI.sub("", piece).rstrip() for piece in re.split(r"[\r\n]", output)]
    bars = [f for f in frames if " · " in f and "ETA" in f]
    assert bars, output[-2000:]
    assert all(len(f) <= 80 for f in bars), [f for f in bars if len(f) > 80]
    # the trace id (shortened), the phase, the bar, done/total and the ETA, all on one line
    phases = r"(resampling|forced answers|closing)"
    pattern = rf"arith-25-with… · {phases} [━╸╺ ]+ *\d+/\d+ ETA (\d+:\d\d:\d\d|-:--:--)"
    assert all(re.fullmatch(pattern, f) for f in bars), [f for f in bars if not re.fullmatch(pattern, f)][:3]
    assert "Loading weights" not in output and "it/s]" not in output  # no third-party (tqdm) bars
    print("\n".join(bars[-3:]))  # shown in the test log: what a user sees
