"""The options several commands share, declared once (`opt.Model`, `opt.Out`, …: each command module imports this
module as `opt`), and the parsing of the option values they share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from anchors.errors import InputError

# What the commands read and write.
Traces = Annotated[Path | None, typer.Argument(help="JSONL file of traces.")]
Seed = Annotated[int, typer.Option("--seed")]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N traces.")]
Temperature = Annotated[float, typer.Option("--temperature", min=0.0)]
TopP = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)]
SkipInvalid = Annotated[bool, typer.Option("--skip-invalid", help="Exit 0 even when some input lines are invalid (they are still reported).")]
FromTA = Annotated[Path | None, typer.Option("--from-ta", help="Read traces from a Thought Anchors folder (problem.json + base_solution.json) instead of JSONL.")]
Mode = Annotated[Literal["default", "paper"], typer.Option("--mode", help="'default', or 'paper' to reproduce the published method's quirks.")]
Out = Annotated[Path, typer.Option("--out", help="Results folder: OUT/<trace id>/ per trace (every command writes the same layout, so their results sit side by side), OUT/rollouts.sqlite, reports.")]
Store = Annotated[Path | None, typer.Option("--store", help="Rollout store (SQLite) to read and add to (default: OUT/rollouts.sqlite): a rollout any command sampled with the same settings is not sampled again.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace results of this method made with other settings (otherwise refused before any work).")]
Shard = Annotated[str | None, typer.Option("--shard", help="Only shard I of N (e.g. 0/4): the traces whose id hashes to I mod N, the same split on every machine; merge the shards' stores with anchors store merge.")]
Tags = Annotated[Literal["auto", "offline", "llm", "none"], typer.Option("--tags", help="Function tags for each sentence: auto (an LLM endpoint when $ANCHORS_LABEL_BASE_URL is set, else the offline tagger), offline, llm, or none.")]

# What is measured.
Outcome = Annotated[str, typer.Option(
    "--outcome", help="What a rollout's answer is: math (the boxed answer, default), choice (a multiple-choice letter), "
                      "regex:FILE.json (named regular expressions), python:MODULE:FUNCTION or python:FILE.py:FUNCTION (a "
                      "grader run in a sandboxed child, e.g. unit tests), judge:RUBRIC.md (an LLM judge at "
                      "$ANCHORS_JUDGE_BASE_URL). Accuracy is the share of the trace's gold_answer (the target class).")]
Sentences = Annotated[str | None, typer.Option(
    "--sentences", help="Only these sentence positions, e.g. '3,5-9' (0-based; default: all). Scoring sentence i needs "
                        "the prefixes before and after it, so both are sampled: a chosen sentence gets the numbers a "
                        "full run gives it; positions past a trace's end are skipped for that trace.")]

# Where rollouts are sampled (resample, score, causality, analyze, generate).
Model = Annotated[str, typer.Option("--model", help="Local: alias, folder, .gguf or hub name. Server: the served model name.")]
Backend = Annotated[Literal["hf", "openai"], typer.Option("--backend", help="hf (local engine) or openai (OpenAI-compatible servers).")]
BaseUrl = Annotated[list[str] | None, typer.Option("--base-url", help="Server base URL, e.g. http://127.0.0.1:8000/v1 (repeat for several: each takes the next prefix block when it has a free slot).")]
Concurrency = Annotated[int | None, typer.Option("--concurrency", min=1, help="Server: calls in flight per server (default: 8 for vllm/sglang/openai, 1 for llama.cpp).")]
Ray = Annotated[str | None, typer.Option("--ray", help="Sample on a Ray cluster: an address, auto (the running cluster) or local (this machine, loopback only). Needs pip install 'anchors[ray]'.")]
RayWorkers = Annotated[int | None, typer.Option("--ray-workers", min=1, help="With --ray and a local model: engines to start (default: one per GPU of the cluster, else one per node).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the rollouts and tokens the run still needs (the store's rows are not sampled again) and the time they take at a tokens/s measured on a short probe; sample nothing else, write nothing.")]
EmbedDevice = Annotated[str | None, typer.Option("--embed-device", help="Device of the sentence embedder: cpu (default) or cuda; with --ray, on the workers.")]
ServerKind = Annotated[Literal["vllm", "sglang", "llama.cpp", "openai"], typer.Option("--server-kind", help="vllm, sglang, llama.cpp or openai: which neutral sampling fields to send.")]
ApiKeyEnv = Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key (never stored).")]
Template = Annotated[Literal["paper", "r1-distill", "qwen3", "chat"] | None, typer.Option("--template", help="Prompt template for traces without a prompt: paper, r1-distill, qwen3 or chat (default: the model's).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Local engine: rows decoded together.")]
Device = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")]
Dtype = Annotated[Literal["float32", "bfloat16", "float16"] | None, typer.Option("--dtype", help="float32 or bfloat16 (default: float32 on CPU).")]


def parse_indices(text: str | None, option: str) -> tuple[int, ...] | None:
    """'0,2,5-9' -> (0, 2, 5, 6, 7, 8, 9); None -> None."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InputError(f"{option} takes indices like '0,2,5-9', not {text!r}") from None
    if not out:
        raise InputError(f"{option}: no indices in {text!r}")
    return tuple(out)

def command_outcome(spec: str, *, mode: str = "default", template: Any = None, answer_method: str | None = None) -> Any:
    """The outcome `--outcome` names, checked before any work (a grader that does not load, no judge endpoint)."""
    from anchors.outcomes import parse_outcome

    close = template.think_close if template is not None else None
    outcome = parse_outcome(spec, mode=mode, answer_method=answer_method, think_close=close)
    outcome.check()
    return outcome

def math_only(spec: str, what: str) -> None:
    """The authors' data and a few methods know math answers only."""
    if spec.strip() != "math":
        raise InputError(f"--outcome {spec}: {what} reads math answers only; leave --outcome at math")
