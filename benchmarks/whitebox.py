"""Benchmark of the white-box methods on the bundled SmolLM2-135M (or any --model).

1. Receiver scores (sentence-level attention of every layer and head) for traces of 1k, 2k, 4k and 8k tokens:
   streaming (chunked queries, reduced in hooks) vs naive (TransformerLens `run_with_cache` of every
   attention pattern, then block means). Each measurement runs in a fresh subprocess so its peak memory
   is its own: peak resident set (CPU) or peak allocated CUDA memory (GPU), model included. Naive runs
   only where its pattern cache fits `--naive-limit-gib`; beyond that its memory is extrapolated from
   the cache size (layers x heads x tokens^2 x 4 bytes) and marked so.
2. The attention suppression matrix of a 40-sentence trace: KV reuse vs naive full recompute, with the
   largest difference between their matrices.

Timings are medians over `--repeats` runs; ratios compare runs made in this one invocation.

    python benchmarks/whitebox.py                       # every row, 3 repeats (hours on 2 loaded cores)
    python benchmarks/whitebox.py --quick               # 1k and 2k tokens, one repeat, 20 sentences (minutes)
    python benchmarks/whitebox.py --tokens 8192 --repeats 1 --skip suppression   # the 8k row alone
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "examples" / "whitebox_trace_written.jsonl"
TA_DATA = Path(os.environ.get("ANCHORS_TA_DATA", ROOT.parent / "shared" / "data" / "thought-anchors-viewer"))
GIB = 2**30


def source_sentences() -> tuple[list[str], str]:
    """Sentences to build benchmark traces from: the authors' released R1-distill traces when present (real
    reasoning, ~29 tokens per sentence), else the hand-written example trace (~13 tokens per sentence)."""
    from anchors.traces.jsonl import read_traces
    from anchors.traces.segment import split_sentences
    from anchors.thought_anchors import load_thought_anchors

    if TA_DATA.is_dir():
        thinking = [t.thinking for t in load_thought_anchors(TA_DATA)]
        return [s.text for text in thinking for s in split_sentences(text)], f"sentences of the {len(thinking)} released Thought Anchors traces"
    base = next(iter(read_traces(TRACE)))
    return [s.text for s in split_sentences(base.thinking)], "sentences of examples/whitebox_trace_written.jsonl"


def synthetic_trace(handle: Any, tokens: int, trace_id: str) -> Any:
    """Source sentences, in order and cycled, until prompt + thinking is just under `tokens` tokens."""
    from anchors.traces.records import Trace

    sentences, _ = source_sentences()
    problem = "A benchmark trace."
    prompt = handle.template.render(problem)

    def thinking(count: int) -> str:
        return " ".join(sentences[k % len(sentences)] for k in range(count)) + "\n"

    count = 8
    while len(handle.encode(prompt + thinking(count * 2))) <= tokens:
        count *= 2
    step = count
    while step > 1:  # binary search for the longest thinking that fits
        step //= 2
        if len(handle.encode(prompt + thinking(count + step))) <= tokens:
            count += step
    return Trace(id=trace_id, problem=problem, thinking=thinking(count), answer_text="\n\nThe answer is \\boxed{4}.")


def peak_memory(device: str) -> float:
    """Peak memory so far in GiB: CUDA allocations on a GPU, else the process's peak resident set."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / GIB
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / GIB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def one_receiver_run(method: str, tokens: int, model: str, device: str) -> dict[str, Any]:
    """Child process: load, run one sentence-attention computation, report time and memory."""
    import torch

    from anchors.methods.whitebox.receivers import naive_sentence_attention, sentence_attention
    from anchors.methods.whitebox.sequence import encode_trace
    from anchors.models import load_model
    from anchors.models.hooks import hooked

    handle = load_model(model, device=device)
    runner = hooked(handle)
    sequence = encode_trace(synthetic_trace(handle, tokens, f"bench-{tokens}"), handle)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = peak_memory(device) if device.startswith("cuda") else _current_rss()
    compute = sentence_attention if method == "streaming" else naive_sentence_attention
    started = time.perf_counter()
    result = compute(runner, sequence)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - started, "peak_gib": peak_memory(device), "baseline_gib": baseline,
            "tokens": sequence.thinking_end, "sentences": sequence.n_sentences,
            "checksum": float(result.matrix.sum())}


def _current_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def run_child(method: str, tokens: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", method, str(tokens), "--model", args.model, "--device", args.device]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def receivers_table(args: argparse.Namespace) -> list[list[str]]:
    from anchors.models import load_model

    handle = load_model(args.model, device="cpu")
    rows = []
    for tokens in args.tokens:
        stream = [run_child("streaming", tokens, args) for _ in range(args.repeats)]
        cache_gib = handle.n_layers * handle.n_heads * stream[0]["tokens"] ** 2 * 4 / GIB
        naive = [run_child("naive", tokens, args) for _ in range(args.repeats)] if cache_gib <= args.naive_limit_gib else []
        rows.append(_receiver_row(stream, naive, cache_gib))
        print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _receiver_row(stream: list[dict], naive: list[dict], cache_gib: float) -> list[str]:
    s_time = statistics.median(r["seconds"] for r in stream)
    s_peak = max(r["peak_gib"] for r in stream)
    base = stream[0]["baseline_gib"]
    if naive and "error" not in naive[0]:
        n_time = statistics.median(r["seconds"] for r in naive)
        n_peak = max(r["peak_gib"] for r in naive)
        naive_cells = [f"{n_time:.1f}", f"{n_peak:.2f}", f"{n_time / s_time:.2f}x", f"{n_peak / s_peak:.1f}x"]
    else:
        extrapolated = base + cache_gib
        why = naive[0]["error"][:40] if naive else "not run"
        naive_cells = [why, f"≥{extrapolated:.1f} (extrapolated)", "", f"≥{extrapolated / s_peak:.1f}x"]
    return [str(stream[0]["tokens"]), str(stream[0]["sentences"]), f"{s_time:.1f}", f"{s_peak:.2f}",
            f"{base:.2f}", *naive_cells]


def suppression_table(args: argparse.Namespace) -> list[list[str]]:
    import numpy as np

    from anchors.methods.whitebox.sequence import encode_trace
    from anchors.methods.whitebox.suppression import SuppressionConfig, suppression_matrix
    from anchors.models import load_model

    handle = load_model(args.model, device=args.device)
    trace = trace_of(handle, args.sentences)
    sequence = encode_trace(trace, handle)
    timings: dict[str, list[float]] = {"kv": [], "naive": []}
    results = {}
    for _ in range(args.repeats):
        for name, reuse in (("kv", True), ("naive", False)):
            started = time.perf_counter()
            results[name] = suppression_matrix(handle, sequence, SuppressionConfig(reuse_kv=reuse))
            timings[name].append(time.perf_counter() - started)
    kv, naive = statistics.median(timings["kv"]), statistics.median(timings["naive"])
    gap = float(np.nanmax(np.abs(results["kv"].raw - results["naive"].raw)))
    return [[str(sequence.n_sentences), str(len(sequence.input_ids)), f"{kv:.1f}", f"{naive:.1f}",
             f"{naive / kv:.2f}x", f"{gap:.1e}"]]


def trace_of(handle: Any, sentences: int) -> Any:
    """A trace of exactly `sentences` sentences (the source sentences, cycled)."""
    from anchors.traces.segment import split_sentences

    trace = synthetic_trace(handle, 10_000, f"bench-{sentences}-sentences")
    kept = split_sentences(trace.thinking)[:sentences]
    return trace.model_copy(update={"thinking": trace.thinking[: kept[-1].end] + "\n"})


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=40)
    parser.add_argument("--naive-limit-gib", type=float, default=8.0, help="Skip naive runs whose pattern cache is larger.")
    parser.add_argument("--skip", choices=["receivers", "suppression"], default=None)
    parser.add_argument("--quick", action="store_true", help="1k and 2k tokens, one repeat, a 20-sentence suppression trace")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_receiver_run(args.child[0], int(args.child[1]), args.model, args.device)))
        return
    if args.quick:
        args.tokens, args.repeats, args.sentences = [1024, 2048], 1, 20
    import torch

    began = time.perf_counter()
    print(f"model {args.model} on {args.device}, torch threads {torch.get_num_threads()}, repeats {args.repeats} (medians)")
    print(f"traces built from the {source_sentences()[1]}, load average {os.getloadavg()[0]:.1f}\n")
    if args.skip != "receivers":
        header = ["tokens", "sentences", "streaming s", "streaming peak GiB", "model-only GiB", "naive s",
                  "naive peak GiB", "time naive/streaming", "memory naive/streaming"]
        print("Receiver scores (sentence attention of every layer and head)\n")
        print(markdown(header, receivers_table(args)) + "\n")
    if args.skip != "suppression":
        header = ["sentences", "tokens", "KV reuse s", "naive recompute s", "speed-up", "max |difference|"]
        print(f"Attention suppression matrix ({args.sentences}-sentence trace)\n")
        print(markdown(header, suppression_table(args)))
    print(f"\ntotal {time.perf_counter() - began:.0f} s, load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
