"""`--shard 0/2` and `--shard 1/2` on two machines (two stores), merged, equal the unsharded run's store row for row;
then `anchors score` on the merged store samples nothing. On the tiny random Qwen2, through the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from anchors.cli import app
from anchors.traces.shards import shard_of

runner = CliRunner()
# Short traces (three sentences each) keep the five runs quick; ids 'a-1' and 'a-3' fall in different shards of 2.
TRACES = [{"id": f"a-{i}", "problem": f"What is {i} + {i}?", "gold_answer": str(2 * i),
           "thinking": f"We add {i} and {i}.\n\nThat makes {2 * i}. So the answer is {2 * i}.",
           "answer_text": f"\n\nThe answer is \\boxed{{{2 * i}}}."} for i in (1, 3)]
SCORE = ["--model", "tiny-qwen2", "--device", "cpu", "--rollouts", "2", "--max-new-tokens", "6", "--bootstrap", "0",
         "--tags", "none", "--no-matrix", "--no-forced"]
# Everything a rollout is; not its timing, its row's creation time or the provenance row id (local to a file).
FIELDS = ("request_key, sampler, params, prompt_hash, request_seed, idx, seed, text, token_ids, finish_reason, "
          "prompt_tokens, completion_tokens, logprobs")


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def rows(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute(f"SELECT {FIELDS} FROM rollouts ORDER BY request_key, idx").fetchall()


def test_two_shards_merged_equal_the_unsharded_store_row_for_row(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(t) + "\n" for t in TRACES))
    ids = [t["id"] for t in TRACES]
    assert {shard_of(t, 2) for t in ids} == {0, 1}, "the test needs traces in both shards"
    invoke("score", str(traces), *SCORE, "--out", str(tmp_path / "whole"))
    for shard in ("0/2", "1/2"):
        invoke("score", str(traces), *SCORE, "--shard", shard, "--out", str(tmp_path / shard.replace("/", "of")))
    assert sorted(p.name for p in (tmp_path / "0of2").iterdir() if p.name in ids) == sorted(t for t in ids if shard_of(t, 2) == 0)
    merged = tmp_path / "merged.sqlite"
    invoke("store", "merge", str(tmp_path / "0of2" / "rollouts.sqlite"), str(tmp_path / "1of2" / "rollouts.sqlite"),
           "--into", str(merged))
    whole = rows(tmp_path / "whole" / "rollouts.sqlite")
    # Each trace's requests are sampled in one job of their own, sharded or not: the same request lists, batch size
    # and thread count on one machine, so the rows are bit-identical (the engine's promise, not a tolerance).
    assert len(whole) > 0 and rows(merged) == whole
    # any machine can score from the merged store: nothing is sampled again, the count stays
    invoke("score", str(traces), *SCORE, "--store", str(merged), "--out", str(tmp_path / "again"))
    assert rows(merged) == whole
