"""bf16 against fp32 on CPU: how often greedy decoding gives the same answer, and how much faster it is, one run.

For every trace of examples/traces.jsonl: the forced-answer prompts `anchors score` makes (one per sentence
prefix, plus the whole thinking), decoded greedily (16 tokens, boxed-answer stop) by the engine on the model
in fp32 and in bf16, back to back, `--repeats` times. Reported: the share of prompts whose graded answer is
the same, whose tokens are all the same, and whose first token is the same; and the median time of each dtype
and their ratio (medians over repetitions; the answers are deterministic, so they are compared once).

Run: PYTHONPATH=src python benchmarks/bf16_agreement.py [--model smollm2-135m] [--repeats 3] [--limit 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.sampling import sampling_params
from anchors.models import load_model
from anchors.outcomes.math_answer import BOX_OPEN
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine
from anchors.rollouts.plan import plan_prompts
from anchors.traces.answers import grade
from anchors.traces.jsonl import read_traces
from anchors.traces.segment import split_sentences

TRACES = Path(__file__).resolve().parents[1] / "examples" / "traces.jsonl"


def forced_requests(handle, traces) -> list:
    config = BlackBoxConfig(rollouts=1)
    requests = []
    for trace in traces:
        plan = plan_prompts(trace, split_sentences(trace.thinking), handle.template, config.mode)
        requests += [r for i in range(len(plan.prefixes)) for r in plan.forced(i, 0, 1, config.seed)]
    return requests


def greedy(engine, requests) -> tuple[dict, float]:
    params = sampling_params(BlackBoxConfig(temperature=0.0), forced=True)
    began = time.perf_counter()
    out = collect_rollouts(engine, requests, params, progress=False)
    return {key: rollouts[0] for key, rollouts in out.items()}, time.perf_counter() - began


def answer(text: str) -> str | None:
    return grade(BOX_OPEN + text, None, mode="default", method="boxed_first").key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=8, help="traces of examples/traces.jsonl")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    engines = {dtype: LocalEngine(load_model(args.model, device="cpu", dtype=dtype), batch_size=args.batch_size)
               for dtype in ("float32", "bfloat16")}
    traces = list(read_traces(TRACES))[: args.limit]
    requests = forced_requests(engines["float32"].handle, traces)
    print(f"{len(requests)} forced-answer prompts of {len(traces)} traces, model {args.model}, greedy, "
          f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    seconds: dict[str, list[float]] = {dtype: [] for dtype in engines}
    got = {}
    for repeat in range(args.repeats):
        for dtype in (list(engines) if repeat % 2 == 0 else list(engines)[::-1]):
            got[dtype], elapsed = greedy(engines[dtype], requests)
            seconds[dtype].append(elapsed)
        print(f"repetition {repeat + 1}: " + ", ".join(f"{d} {s[-1]:.1f} s" for d, s in seconds.items())
              + f", load {os.getloadavg()[0]:.1f}", flush=True)
    pairs = [(got["float32"][r.key], got["bfloat16"][r.key]) for r in requests]
    same_answer = sum(answer(a.text) == answer(b.text) for a, b in pairs)
    answered = sum(answer(a.text) is not None for a, _ in pairs)
    same_tokens = sum(a.token_ids == b.token_ids for a, b in pairs)
    same_first = sum(a.token_ids[:1] == b.token_ids[:1] for a, b in pairs)
    ratio = statistics.median(f / b for f, b in zip(seconds["float32"], seconds["bfloat16"]))
    print("\n| measure | value |\n|---|---|")
    print(f"| prompts (fp32 answered) | {len(pairs)} ({answered}) |")
    print(f"| same graded answer | {same_answer} ({same_answer / len(pairs):.1%}) |")
    print(f"| same tokens throughout | {same_tokens} ({same_tokens / len(pairs):.1%}) |")
    print(f"| same first token | {same_first} ({same_first / len(pairs):.1%}) |")
    print(f"| median seconds fp32 / bf16 | {statistics.median(seconds['float32']):.1f} / "
          f"{statistics.median(seconds['bfloat16']):.1f} (bf16 {ratio:.2f}× faster) |")


if __name__ == "__main__":
    main()
