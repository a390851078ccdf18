"""Rollout engine benchmark: the shared-prefix engine against plain Hugging Face `generate`, one run.

Same model, same prefixes (nested sentence prefixes of one reasoning trace), same sampling settings
(temperature 0.6, top-p 0.95, EOS ends a rollout, no boxed-answer stop), N rollouts per prefix:

  (a) one `generate` call per rollout (what the published code does with a local model)
  (b) one batched `generate` call per prefix (N copies of the prompt in one batch)
  (c) the engine: the prefix encoded once, its KV cache repeated for the N rows, finished rows dropped

Methods run back to back on each prefix, so a busy machine slows all three alike; the table gives the
median over prefixes of generated tokens per second and of the ratios. (a)'s rate does not depend on N
(one rollout at a time), so it is measured on `--sequential` rollouts per prefix to keep the run short.
Also printed: this machine's fp32 matmul rate, and the share of it the engine achieves (model FLOPs:
2 × weights per token plus attention over the context).

Second case, "many prefixes, few rollouts" (what black-box scoring asks for): `--many` nested prefixes ×
`--few` rollouts × `--many-new-tokens` tokens, the same requests (keys, seeds) run two ways, back to back,
`--repeats` times:

  (d) one job per prefix: batches hold one prefix's rows only (the engine's batches before cross-prefix
      batching; the longest prefix is not shared, which costs one short prefill per prefix)
  (e) one job of all prefixes: the engine batches rows of different nested prefixes together

The table gives medians over repetitions, the ratio (e)/(d) taken within each repetition, and how many
rollouts came out with the same tokens both ways.

Run: PYTHONPATH=src python benchmarks/rollout_engine.py [--case one-prefix|many-prefixes|both]
     [--model smollm2-135m] [--rollouts 32] [--new-tokens 128] [--prefixes 5] [--sequential 2] [--bf16]
     [--many 10] [--few 8] [--many-new-tokens 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from anchors.models import load_model, sample
from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine

PROBLEM = "Tom has 12 apples. He gives 5 apples to his sister and buys 8 more. How many apples does Tom have now?"
THINKING = (
    "Tom starts with 12 apples. He gives 5 apples to his sister, so he has 12 - 5 = 7 apples left. "
    "Then he buys 8 more apples. Adding them gives 7 + 8 = 15 apples. Let me check this again. "
    "12 minus 5 is 7, and 7 plus 8 is 15. So Tom has 15 apples now. "
    "That matches the first count. Both ways give the same number. The answer is 15. "
)


@dataclass
class Timing:
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def prefixes(handle, count: int) -> list[tuple[int, ...]]:
    """Token ids of the prompt plus the first k sentences, k = 1..count (each prefix inside the next)."""
    ends = [i + 1 for i, c in enumerate(THINKING) if c == "." and THINKING[i + 1:i + 2] == " "]
    return [tuple(handle.encode_prompt(PROBLEM, THINKING[:end + 1])) for end in ends[:count]]


def run_sequential(handle, ids, params, count) -> Timing:
    began, tokens = time.perf_counter(), 0
    for k in range(count):
        out = sample(handle, ids, max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                     top_p=params.top_p, seed=k)
        tokens += len(out[0].token_ids)
    return Timing(tokens, time.perf_counter() - began)


def run_batched_generate(handle, ids, params, n) -> Timing:
    began = time.perf_counter()
    out = sample(handle, ids, max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                 top_p=params.top_p, seed=0, num_samples=n)
    return Timing(sum(len(s.token_ids) for s in out), time.perf_counter() - began)


def run_engine(engine, ids, params, n, key) -> Timing:
    request = PrefixRequest(key=key, prompt_text=engine.handle.decode(list(ids)), prompt_ids=ids, n=n, seed=0)
    began = time.perf_counter()
    out = collect_rollouts(engine, [request], params, progress=False)[key]
    return Timing(sum(r.completion_tokens for r in out), time.perf_counter() - began)


def run_many_prefixes(engine, all_ids, params, few, repeat) -> dict[str, tuple[Timing, dict]]:
    """(d) one job per prefix and (e) one job of all prefixes, on the same requests."""
    requests = [PrefixRequest(key=f"many/{repeat}/{p}", prompt_text=engine.handle.decode(list(ids)), prompt_ids=ids,
                              n=few, seed=p) for p, ids in enumerate(all_ids)]
    began = time.perf_counter()
    per_prefix = {}
    for request in requests:
        per_prefix |= collect_rollouts(engine, [request], params, progress=False)
    one_by_one = Timing(sum(r.completion_tokens for v in per_prefix.values() for r in v), time.perf_counter() - began)
    began = time.perf_counter()
    together = collect_rollouts(engine, requests, params, progress=False)
    batched = Timing(sum(r.completion_tokens for v in together.values() for r in v), time.perf_counter() - began)
    return {"(d) one job per prefix": (one_by_one, per_prefix), "(e) all prefixes in one job": (batched, together)}


def many_prefixes(handle, args) -> None:
    params = SamplingParams(max_new_tokens=args.many_new_tokens, temperature=0.6, top_p=0.95,
                            stop_after_boxed_answer=False)
    engine = LocalEngine(handle, batch_size=args.rollouts)
    all_ids = prefixes(handle, args.many)
    print(f"\nmany prefixes, few rollouts: {len(all_ids)} nested prefixes of {min(map(len, all_ids))}–"
          f"{max(map(len, all_ids))} tokens × {args.few} rollouts × {args.many_new_tokens} new tokens, "
          f"batch size {args.rollouts}, {args.repeats} repetitions, model {handle.name}, torch threads "
          f"{torch.get_num_threads()}")
    runs = []
    for repeat in range(args.repeats):
        runs.append(run_many_prefixes(engine, all_ids, params, args.few, repeat))
        print(f"repetition {repeat + 1}/{args.repeats}: " + ", ".join(f"{k.split()[0]} {t.rate:.1f} tok/s"
                                                                     for k, (t, _) in runs[-1].items()), flush=True)
    same = [sum(a.token_ids == b.token_ids for key in run["(d) one job per prefix"][1]
                for a, b in zip(run["(d) one job per prefix"][1][key], run["(e) all prefixes in one job"][1][key]))
            for run in runs]
    print("\n| method | median tokens/s | median seconds | median × vs (d) | tokens (median) |")
    print("|---|---|---|---|---|")
    for name in runs[0]:
        timings = [run[name][0] for run in runs]
        ratio = statistics.median(run[name][0].rate / run["(d) one job per prefix"][0].rate for run in runs)
        print(f"| {name} | {statistics.median(t.rate for t in timings):.1f} | "
              f"{statistics.median(t.seconds for t in timings):.1f} | {ratio:.2f} | "
              f"{statistics.median(t.tokens for t in timings):.0f} |")
    print(f"\nrollouts with the same tokens in (d) and (e): {same} of {len(all_ids) * args.few} per repetition")


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        a @ b
        timings.append(time.perf_counter() - began)
    return 2 * size**3 / statistics.median(timings) / 1e9


def flops_per_token(handle, context: int) -> float:
    """Forward FLOPs of one token: 2 per weight used in a matmul, plus attention scores and mixing."""
    config = handle.hf_model.config
    weights = sum(p.numel() for p in handle.hf_model.parameters())
    if not getattr(config, "tie_word_embeddings", False):
        weights -= handle.hf_model.get_input_embeddings().weight.numel()  # a lookup, not a matmul
    return 2 * weights + 4 * config.num_hidden_layers * context * config.hidden_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rollouts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefixes", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=2, help="rollouts per prefix for (a)")
    parser.add_argument("--bf16", action="store_true", help="also time the engine in bfloat16")
    parser.add_argument("--case", choices=["one-prefix", "many-prefixes", "both"], default="both")
    parser.add_argument("--many", type=int, default=10, help="many-prefixes: nested prefixes")
    parser.add_argument("--few", type=int, default=8, help="many-prefixes: rollouts per prefix")
    parser.add_argument("--many-new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="many-prefixes: repetitions")
    args = parser.parse_args()

    handle = load_model(args.model, device="cpu")
    if args.case != "one-prefix":
        many_prefixes(handle, args)
    if args.case != "many-prefixes":
        one_prefix(handle, args)


def one_prefix(handle, args) -> None:
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.6, top_p=0.95, stop_after_boxed_answer=False)
    engines = {"(c) engine fp32": LocalEngine(handle, batch_size=args.rollouts)}
    if args.bf16:
        engines["(c) engine bf16"] = LocalEngine(load_model(args.model, device="cpu", dtype="bfloat16"),
                                                 batch_size=args.rollouts)
    results: dict[str, list[Timing]] = {"(a) sequential generate": [], "(b) batched generate": []}
    results.update({name: [] for name in engines})
    all_ids = prefixes(handle, args.prefixes)
    print(f"model {handle.name}, {len(all_ids)} prefixes of {min(map(len, all_ids))}–{max(map(len, all_ids))} "
          f"tokens, N = {args.rollouts}, {args.new_tokens} new tokens, torch threads {torch.get_num_threads()}")
    for p, ids in enumerate(all_ids):
        results["(a) sequential generate"].append(run_sequential(handle, ids, params, args.sequential))
        results["(b) batched generate"].append(run_batched_generate(handle, ids, params, args.rollouts))
        for name, engine in engines.items():
            results[name].append(run_engine(engine, ids, params, args.rollouts, f"bench/{name}/{p}"))
        print(f"prefix {p + 1}/{len(all_ids)}: " + ", ".join(f"{k.split()[0]} {v[-1].rate:.1f} tok/s"
                                                            for k, v in results.items()), flush=True)
    report(results, handle, all_ids, args)


def report(results, handle, all_ids, args) -> None:
    sequential, batched = results["(a) sequential generate"], results["(b) batched generate"]
    print("\n| method | median tokens/s | median × vs (a) | median × vs (b) | tokens | seconds |")
    print("|---|---|---|---|---|---|")
    for name, timings in results.items():
        vs_a = statistics.median(t.rate / s.rate for t, s in zip(timings, sequential))
        vs_b = statistics.median(t.rate / b.rate for t, b in zip(timings, batched))
        print(f"| {name} | {statistics.median(t.rate for t in timings):.1f} | {vs_a:.2f} | {vs_b:.2f} | "
              f"{sum(t.tokens for t in timings)} | {sum(t.seconds for t in timings):.1f} |")
    peak = matmul_gflops()
    context = statistics.mean(map(len, all_ids)) + args.new_tokens / 2
    engine_rate = statistics.median(t.rate for t in results["(c) engine fp32"])
    achieved = engine_rate * flops_per_token(handle, int(context)) / 1e9
    print(f"\nfp32 matmul (1024², median of 10): {peak:.1f} GFLOP/s; engine fp32: ~{achieved:.1f} GFLOP/s "
          f"= {100 * achieved / peak:.0f}% of it")


if __name__ == "__main__":
    main()
