"""Rollout engine benchmark: the shared-prefix engine against plain Hugging Face `generate`, one run.

Same model, same prefixes (nested sentence prefixes of one reasoning trace), same sampling settings
(temperature 0.6, top-p 0.95, EOS ends a rollout, no boxed-answer stop), N rollouts per prefix:

  (a) one `generate` call per rollout (what the published code does with a local model)
  (b) one batched `generate` call per prefix (N copies of the prompt in one batch)
  (c) the engine: the prefix encoded once and held once, N rows continuing it, finished rows dropped

Methods run back to back on each prefix, so a busy machine slows all three alike; the table gives the
median over prefixes of generated tokens per second and of the ratios. (a)'s rate does not depend on N
(one rollout at a time), so it is measured on `--sequential` rollouts per prefix to keep the run short.

Roofline (same run, after the timed cases): this machine's matmul rate in fp32 and bf16, (i) on square 1024²
matrices and (ii) on the model's own linear layers with N rows (a decoding step's shapes), and each
method's tokens/s as a share of the tokens/s those rates allow (model FLOPs per token: 2 × weights used in
a matmul, plus attention over the context).

Second case, "many prefixes, few rollouts" (what black-box scoring asks for): `--many` nested prefixes ×
`--few` rollouts × `--many-new-tokens` tokens, the same requests (keys, seeds) run two ways, back to back,
`--repeats` times:

  (d) one job per prefix: batches hold one prefix's rows only
  (e) one job of all prefixes: the engine batches rows of different nested prefixes together

Third case, forced answers: the forced-answer requests `anchors score` makes for a `--forced-sentences`
sentence trace (one per prefix, `--few` answers each, 16 tokens, boxed-answer stop), two ways:

  (f) one request at a time
  (g) all in one job: the prompts differ in their last ~15 tokens (the forced-answer suffix after each
      prefix), so they share the longest prompt's cache and their own tokens run in one forward

`--profile` (with the one-prefix case): one more engine run per dtype under `torch.profiler`, the ops that took
the most time, and the share of the run's wall time spent in matrix products, with the tokens/s the engine would
reach if everything else took no time (the bound that no amount of Python-side work can beat).

`--compile` (with the one-prefix case): each engine once more with the model's forward under `torch.compile`
(dynamic shapes), against the same engine in eager mode on the first prefix: the compiling time, the rate, and
how many rollouts keep their tokens. The compiled rates join the roofline table.

Both repeated cases give medians over repetitions, the ratio taken within each repetition, and how many
rollouts came out with the same tokens both ways. Every line of progress records the 1-minute load average
(the machine is shared: ratios within one run are what to read).

Run: PYTHONPATH=src python benchmarks/rollout_engine.py [--case one-prefix|many-prefixes|forced|all]
     [--model smollm2-135m] [--rollouts 32] [--new-tokens 128] [--prefixes 5] [--sequential 2] [--bf16]
     [--many 10] [--few 8] [--many-new-tokens 96] [--repeats 3] [--forced-sentences 20] [--profile] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import torch

from anchors.models import load_model
from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine
from anchors.rollouts.reference import sample

PROBLEM = "Tom has 12 apples. He gives 5 apples to his sister and buys 8 more. How many apples does Tom have now?"
THINKING = (
    "Tom starts with 12 apples. He gives 5 apples to his sister, so he has 12 - 5 = 7 apples left. "
    "Then he buys 8 more apples. Adding them gives 7 + 8 = 15 apples. Let me check this again. "
    "12 minus 5 is 7, and 7 plus 8 is 15. So Tom has 15 apples now. "
    "That matches the first count. Both ways give the same number. The answer is 15. "
    "Wait, let me make sure I read the problem right. He gives away 5, that is a subtraction. "
    "He buys 8 more, that is an addition. The order does not matter here. "
    "12 + 8 is 20, and 20 - 5 is 15 as well. So both orders give 15. "
    "I should also check that no apples were eaten. The problem does not say so. "
    "So the count stays at 15. I am confident the answer is 15. "
)


@dataclass
class Timing:
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def sentence_ends() -> list[int]:
    return [i + 1 for i, c in enumerate(THINKING) if c == "." and THINKING[i + 1:i + 2] == " "]


def prefixes(handle, count: int) -> list[tuple[int, ...]]:
    """Token ids of the prompt plus the first k sentences, k = 1..count (each prefix inside the next)."""
    return [tuple(handle.encode_prompt(PROBLEM, THINKING[:end + 1])) for end in sentence_ends()[:count]]


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
    return engine_rollouts(engine, ids, params, n, key)[0]


def engine_rollouts(engine, ids, params, n, key) -> tuple[Timing, list[tuple[int, ...]]]:
    """The timing and each rollout's tokens (seeds depend on the index only, not on `key`)."""
    request = PrefixRequest(key=key, prompt_text=engine.handle.decode(list(ids)), prompt_ids=ids, n=n, seed=0)
    began = time.perf_counter()
    out = collect_rollouts(engine, [request], params, progress=False)[key]
    return (Timing(sum(r.completion_tokens for r in out), time.perf_counter() - began),
            [tuple(r.token_ids) for r in out])


# --- jobs of many requests, two ways --------------------------------------------------------------------------


def one_by_one_and_together(engine, requests, params) -> dict[str, tuple[Timing, dict]]:
    """The same requests as one job each, then as one job."""
    began = time.perf_counter()
    alone = {}
    for request in requests:
        alone |= collect_rollouts(engine, [request], params, progress=False)
    one_by_one = Timing(sum(r.completion_tokens for v in alone.values() for r in v), time.perf_counter() - began)
    began = time.perf_counter()
    together = collect_rollouts(engine, requests, params, progress=False)
    batched = Timing(sum(r.completion_tokens for v in together.values() for r in v), time.perf_counter() - began)
    return {"one by one": (one_by_one, alone), "together": (batched, together)}


def repeated_comparison(title: str, names: tuple[str, str], make_requests, engine, params, repeats: int) -> None:
    print(f"\n{title}")
    runs = []
    for repeat in range(repeats):
        runs.append(one_by_one_and_together(engine, make_requests(repeat), params))
        print(f"repetition {repeat + 1}/{repeats}: " + ", ".join(f"{name} {t.rate:.1f} tok/s {t.seconds:.1f} s"
                                                                  for name, (t, _) in zip(names, runs[-1].values()))
              + f", {load()}", flush=True)
    same = [sum(a.token_ids == b.token_ids for key, rollouts in run["one by one"][1].items()
                for a, b in zip(rollouts, run["together"][1][key])) for run in runs]
    total = sum(len(v) for v in runs[0]["one by one"][1].values())
    print(f"\n| method | median tokens/s | median seconds | median × vs {names[0].split()[0]} | tokens (median) |")
    print("|---|---|---|---|---|")
    for label, name in zip(("one by one", "together"), names):
        timings = [run[label][0] for run in runs]
        ratio = statistics.median(run[label][0].rate / run["one by one"][0].rate for run in runs)
        speed = statistics.median(run["one by one"][0].seconds / run[label][0].seconds for run in runs)
        print(f"| {name} | {statistics.median(t.rate for t in timings):.1f} | "
              f"{statistics.median(t.seconds for t in timings):.1f} | {ratio:.2f} (time: {speed:.2f}) | "
              f"{statistics.median(t.tokens for t in timings):.0f} |")
    print(f"\nrollouts with the same tokens both ways: {same} of {total} per repetition")


def many_prefixes(handle, args) -> None:
    params = SamplingParams(max_new_tokens=args.many_new_tokens, temperature=0.6, top_p=0.95,
                            stop_after_boxed_answer=False)
    all_ids = prefixes(handle, args.many)

    def make_requests(repeat):
        return [PrefixRequest(key=f"many/{repeat}/{p}", prompt_text=handle.decode(list(ids)), prompt_ids=ids,
                              n=args.few, seed=p) for p, ids in enumerate(all_ids)]

    title = (f"many prefixes, few rollouts: {len(all_ids)} nested prefixes of {min(map(len, all_ids))}–"
             f"{max(map(len, all_ids))} tokens × {args.few} rollouts × {args.many_new_tokens} new tokens, batch size "
             f"{args.rollouts}, {args.repeats} repetitions, model {handle.name}, torch threads {torch.get_num_threads()}")
    repeated_comparison(title, ("(d) one job per prefix", "(e) all prefixes in one job"), make_requests,
                        LocalEngine(handle, batch_size=args.rollouts), params, args.repeats)


def forced_answers(handle, args) -> None:
    from dataclasses import replace

    from anchors.methods.blackbox.config import BlackBoxConfig
    from anchors.methods.blackbox.sampling import sampling_params
    from anchors.rollouts.plan import plan_prompts
    from anchors.traces.records import Trace
    from anchors.traces.segment import split_sentences

    thinking = THINKING[:sentence_ends()[args.forced_sentences - 1] + 1]
    trace = Trace(id="bench", problem=PROBLEM, thinking=thinking, answer_text="The answer is \\boxed{15}.")
    sentences = split_sentences(trace.thinking)
    config = BlackBoxConfig(rollouts=args.few)
    plan = plan_prompts(trace, sentences, handle.template, config.mode)
    base = [r for i in range(len(plan.prefixes)) for r in plan.forced(i, 0, args.few, config.seed)]

    def make_requests(repeat):
        return [replace(r, key=f"{repeat}/{r.key}") for r in base]

    title = (f"forced answers of a {len(sentences)}-sentence trace: {len(base)} prompts × {args.few} answers × "
             f"{config.forced_budget} tokens (boxed-answer stop), batch size {args.rollouts}, "
             f"{args.repeats} repetitions, model {handle.name}")
    repeated_comparison(title, ("(f) one request at a time", "(g) all in one job"), make_requests,
                        LocalEngine(handle, batch_size=args.rollouts), sampling_params(config, forced=True), args.repeats)


# --- profile --------------------------------------------------------------------------------------------------

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")  # aten::linear dispatches to mm/addmm


def profile_engine(name: str, engine, ids, params, n: int, sequential_rate: float, top: int = 10) -> None:
    """One engine run under torch.profiler: its costliest ops, and the matmul share of its wall time (and the
    bound it implies, also as a multiple of (a)'s median rate)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        timing = run_engine(engine, ids, params, n, f"profile/{name}")
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    wall_us = timing.seconds * 1e6
    matmul_us = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    bound = timing.tokens / (matmul_us / 1e6)
    print(f"\nprofile of {name} ({timing.rate:.1f} tokens/s under the profiler, {timing.seconds:.1f} s; {load()}):")
    print("| op | self seconds | share of wall time | calls |")
    print("|---|---|---|---|")
    for event in events[:top]:
        print(f"| {event.key} | {event.self_cpu_time_total / 1e6:.2f} | {event.self_cpu_time_total / wall_us:.0%} | "
              f"{event.count} |")
    print(f"matrix products ({', '.join(MATMUL_OPS)}): {matmul_us / wall_us:.0%} of wall time; with everything else "
          f"free the engine would reach {bound:.0f} tokens/s = {bound / sequential_rate:.1f}× (a)")


def compiled_engine(name: str, engine, ids, params, n: int) -> tuple[str, float]:
    """The engine with the model's forward under `torch.compile` (dynamic shapes: rows drop out and the cache
    grows every step) against itself in eager mode, same seeds: the first compiled run's seconds (compiling
    included), a second run's rate, and how many rollouts keep their tokens. Returns (name, compiled rate)."""
    eager, eager_tokens = engine_rollouts(engine, ids, params, n, f"compile/{name}")
    model = engine.handle.hf_model
    model.forward = torch.compile(model.forward, dynamic=True)
    try:
        first, _ = engine_rollouts(engine, ids, params, n, f"compile/{name}")
        compiled, tokens = engine_rollouts(engine, ids, params, n, f"compile/{name}")
    finally:
        del model.forward  # the class's own forward again
        torch._dynamo.reset()
    same = sum(a == b for a, b in zip(eager_tokens, tokens))
    print(f"| {name} | {eager.rate:.1f} | {first.seconds:.0f} | {compiled.rate:.1f} | {compiled.rate / eager.rate:.2f} | "
          f"{same} of {len(tokens)} | {load()} |", flush=True)
    return f"{name} compiled", compiled.rate


# --- roofline -------------------------------------------------------------------------------------------------


def _median_seconds(fn, repeats: int = 10) -> float:
    fn()
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


def square_matmul_gflops(dtype: torch.dtype, size: int = 1024) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return 2 * size**3 / _median_seconds(lambda: a @ b) / 1e9


def model_shapes_gflops(handle, rows: int, dtype: torch.dtype) -> float:
    """The model's linear layers (and the output head), each once with `rows` rows: one decoding step's
    matmuls, on random weights of the model's shapes in `dtype`."""
    weights = [torch.randn(m.weight.shape, dtype=dtype) for m in linear_layers(handle)]
    inputs = [torch.randn(rows, w.shape[1], dtype=dtype) for w in weights]

    def step():
        for x, w in zip(inputs, weights):
            torch.nn.functional.linear(x, w)

    with torch.inference_mode():
        seconds = _median_seconds(step, repeats=5)
    return 2 * rows * sum(w.numel() for w in weights) / seconds / 1e9


def linear_layers(handle) -> list[torch.nn.Linear]:
    return [m for m in handle.hf_model.modules() if isinstance(m, torch.nn.Linear)]


def flops_per_token(handle, context: int) -> float:
    """Forward FLOPs of one token: 2 per weight used in a matmul, plus attention scores and mixing."""
    config = handle.hf_model.config
    weights = sum(m.weight.numel() for m in linear_layers(handle))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * weights + 4 * config.num_hidden_layers * context * config.num_attention_heads * head_dim


def roofline(handle, rows: int, context: int, rates: dict[str, float]) -> None:
    """Print the ceilings and each method's share of them."""
    per_token = flops_per_token(handle, context)
    ceilings = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ceilings[f"{name} 1024² matmul"] = square_matmul_gflops(dtype)
        ceilings[f"{name} model shapes × {rows} rows"] = model_shapes_gflops(handle, rows, dtype)
    print(f"\nroofline ({per_token / 1e9:.3f} GFLOP per token at {context} tokens of context; {load()}):")
    print("| ceiling | GFLOP/s | tokens/s it allows | " + " | ".join(f"share: {m}" for m in rates) + " |")
    print("|---|---|---|" + "---|" * len(rates))
    for name, gflops in ceilings.items():
        allowed = gflops * 1e9 / per_token
        print(f"| {name} | {gflops:.1f} | {allowed:.0f} | " + " | ".join(f"{100 * r / allowed:.0f}%" for r in rates.values())
              + " |")


# --- one prefix, many rollouts --------------------------------------------------------------------------------


def one_prefix(handle, args) -> None:
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.6, top_p=0.95, stop_after_boxed_answer=False)
    engines = {"(c) engine fp32": LocalEngine(handle, batch_size=args.rollouts)}
    if args.bf16:
        engines["(c) engine bf16"] = LocalEngine(load_model(args.model, device="cpu", dtype="bfloat16"),
                                                 batch_size=args.rollouts)
    results: dict[str, list[Timing]] = {"(a) sequential generate": [], "(b) batched generate": []}
    results.update({name: [] for name in engines})
    all_ids = prefixes(handle, args.prefixes)
    print(f"\none prefix, many rollouts: model {handle.name}, {len(all_ids)} prefixes of {min(map(len, all_ids))}–"
          f"{max(map(len, all_ids))} tokens, N = {args.rollouts}, {args.new_tokens} new tokens, torch threads "
          f"{torch.get_num_threads()}")
    for engine in engines.values():  # first-call costs (thread pools, kernels) out of the timings
        run_engine(engine, all_ids[0], SamplingParams(max_new_tokens=2), 2, "warm")
    for p, ids in enumerate(all_ids):
        results["(a) sequential generate"].append(run_sequential(handle, ids, params, args.sequential))
        results["(b) batched generate"].append(run_batched_generate(handle, ids, params, args.rollouts))
        for name, engine in engines.items():
            results[name].append(run_engine(engine, ids, params, args.rollouts, f"bench/{name}/{p}"))
        print(f"prefix {p + 1}/{len(all_ids)}: " + ", ".join(f"{k.split()[0]} {v[-1].rate:.1f} tok/s"
                                                            for k, v in results.items()) + f", {load()}", flush=True)
    sequential, batched = results["(a) sequential generate"], results["(b) batched generate"]
    print("\n| method | median tokens/s | median × vs (a) | median × vs (b) | tokens | seconds |")
    print("|---|---|---|---|---|---|")
    for name, timings in results.items():
        vs_a = statistics.median(t.rate / s.rate for t, s in zip(timings, sequential))
        vs_b = statistics.median(t.rate / b.rate for t, b in zip(timings, batched))
        print(f"| {name} | {statistics.median(t.rate for t in timings):.1f} | {vs_a:.2f} | {vs_b:.2f} | "
              f"{sum(t.tokens for t in timings)} | {sum(t.seconds for t in timings):.1f} |")
    if args.profile:
        for name, engine in engines.items():
            profile_engine(name, engine, all_ids[0], params, args.rollouts,
                           statistics.median(t.rate for t in sequential))
    rates = {name: statistics.median(t.rate for t in timings)
             for name, timings in results.items() if name.startswith(("(b)", "(c)"))}
    if args.compile:
        print("\ntorch.compile of the model's forward, against the same engine in eager mode (first prefix):")
        print("| engine | eager tokens/s | first compiled run, s (compiling included) | compiled tokens/s | × eager | "
              "same tokens | load |")
        print("|---|---|---|---|---|---|---|")
        rates.update(compiled_engine(name, engine, all_ids[0], params, args.rollouts) for name, engine in engines.items())
    context = int(statistics.mean(map(len, all_ids)) + args.new_tokens / 2)
    roofline(handle, args.rollouts, context, rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rollouts", type=int, default=32, help="N, and the engine's batch size")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefixes", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=2, help="rollouts per prefix for (a)")
    parser.add_argument("--bf16", action="store_true", help="also time the engine in bfloat16")
    parser.add_argument("--case", choices=["one-prefix", "many-prefixes", "forced", "all"], default="all")
    parser.add_argument("--many", type=int, default=10, help="many-prefixes: nested prefixes")
    parser.add_argument("--few", type=int, default=8, help="many-prefixes and forced: rollouts per prefix")
    parser.add_argument("--many-new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="many-prefixes and forced: repetitions")
    parser.add_argument("--forced-sentences", type=int, default=20, help=f"forced: at most {len(sentence_ends())}")
    parser.add_argument("--profile", action="store_true", help="one-prefix: profile one engine run per dtype")
    parser.add_argument("--compile", action="store_true",
                        help="one-prefix: also time each engine with torch.compile (minutes of compiling on 2 cores)")
    args = parser.parse_args()

    handle = load_model(args.model, device="cpu")
    print(f"{load()} at the start; torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.case in ("forced", "all"):
        forced_answers(handle, args)
    if args.case in ("many-prefixes", "all"):
        many_prefixes(handle, args)
    if args.case in ("one-prefix", "all"):
        one_prefix(handle, args)


if __name__ == "__main__":
    main()
