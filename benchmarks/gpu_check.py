"""One-shot device check: numerical parity of the white-box methods and the rollout engine on an accelerator,
and the engine's throughput against Hugging Face `generate`, in one run that prints a table and writes JSON.

For tiny-qwen2 and tiny-llama, in float32 and bfloat16 on `--device`:
  (a) bridge: TransformerLens bridge (and the chunked hooked runner) logits vs plain HF eager logits, on the device
  (b) device vs CPU fp32 logits
  (c) streaming sentence attention vs the naive one (every pattern cached, then averaged)
  (d) attention suppression with KV reuse vs the full recompute
  (e) device vs CPU fp32: sentence-attention (receiver) matrix, suppression matrix, top receiver heads
  (f) engine: the same seed twice gives the same token ids; greedy device vs CPU fp32 token agreement
  (g) throughput: a random-weight model with SmolLM2-135M's shape (config + tokenizer from .gpu_kit, weights
      drawn here), shared-prefix engine vs batched HF `generate`: tokens/s, medians over repetitions.
  (h) where the engine's time goes: one (g) run under the torch profiler, the costliest ops by device and by
      host time, and the host-device synchronisations and copies per decoding step (in the JSON).
Each part runs in its own try block: a failure is recorded (with its traceback in the JSON) and the rest runs.
Parts that would start after `--time-budget` seconds are skipped and say so.

Run (after `. .gpu_kit/env.sh` on the device, see benchmarks/gpu_install.sh):
  python benchmarks/gpu_check.py --device cuda --out $OUT/gpu_check.json
On a CPU, to try it: python benchmarks/gpu_check.py --device cpu --small --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/rollout_engine.py: the timed runs

from anchors.methods.whitebox.receivers import ReceiverConfig, naive_sentence_attention, receiver_heads, sentence_attention
from anchors.methods.whitebox.sequence import encode_trace
from anchors.methods.whitebox.suppression import SuppressionConfig, suppression_matrix
from anchors.models import load_model
from anchors.models.hooks import hooked
from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine
from anchors.traces.records import Trace

TINY = ("tiny-qwen2", "tiny-llama")
DTYPES = ("float32", "bfloat16")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Check:
    """One measured quantity. `ok` is None where there is nothing to hold it against (a report, not a check)."""

    part: str
    model: str
    dtype: str
    metric: str
    value: Any = None
    limit: float | None = None
    seconds: float = 0.0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool | None:
        if self.error is not None:
            return False
        if self.limit is None or not isinstance(self.value, (int, float)):
            return None
        return bool(self.value <= self.limit)


class Runner:
    """Runs parts in order, each guarded, within a time budget."""

    def __init__(self, budget: float, out: Path, env: dict[str, Any], args: argparse.Namespace) -> None:
        self.checks: list[Check] = []
        self.began = time.perf_counter()
        self.budget = budget
        self.out, self.env, self.args = out, env, args

    def over_budget(self) -> bool:
        return time.perf_counter() - self.began > self.budget

    def save(self) -> dict[str, Any]:
        """Write the JSON so far (after every part: a run killed from outside still leaves its results)."""
        summary = {"environment": self.env, "seconds": time.perf_counter() - self.began,
                   "failed": sum(c.ok is False for c in self.checks),
                   "checks": [{**c.__dict__, "ok": c.ok} for c in self.checks], "args": vars(self.args)}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(summary, indent=1, default=str))
        return summary

    def part(self, part: str, model: str, dtype: str, metric: str, fn, limit: float | None = None) -> None:
        check = Check(part, model, dtype, metric, limit=limit)
        if self.over_budget():
            check.error = f"skipped: time budget of {self.budget:.0f} s spent"
        else:
            started = time.perf_counter()
            try:
                out = fn()
                check.value, check.detail = out if isinstance(out, tuple) else (out, {})
            except Exception as error:  # one part's failure is reported; the others still run
                check.error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                check.detail = {"traceback": traceback.format_exc()[-4000:]}
            check.seconds = time.perf_counter() - started
        self.checks.append(check)
        print(_row(check), flush=True)
        self.save()


def make_trace(trace_id: str = "t1", n: int = 10) -> Trace:
    steps = " ".join(f"Step {i}: I add {i} and {i + 3} to get {2 * i + 3}." for i in range(n))
    return Trace(id=trace_id, problem="What is 40 + 2?", thinking=steps + "\nSo the answer is 42.\n",
                 answer_text="\n\nThe answer is \\boxed{42}.")


def max_diff(a: Any, b: Any) -> float:
    a = a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    b = b.detach().float().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return math.inf  # NaN / inf in different places
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


# --- (a)-(e): white-box parity ------------------------------------------------------------------------------


class WhiteBox:
    """The CPU fp32 references for one tiny model, computed once."""

    def __init__(self, name: str, trace: Trace) -> None:
        self.name, self.trace = name, trace
        cpu = load_model(name, device="cpu", dtype="float32")
        self.ids = encode_trace(trace, cpu).input_ids
        with torch.no_grad():
            self.logits = cpu.hf_model(torch.tensor([self.ids])).logits
        self.attention = sentence_attention(cpu, trace).matrix
        self.suppression = suppression_matrix(cpu, trace, SuppressionConfig(sources=(0, 4, 9))).raw
        self.heads = receiver_heads(cpu, [trace, make_trace("t2", 12)], ReceiverConfig(top_k=3)).heads


def whitebox_parts(run: Runner, device: str, dtype: str, ref: WhiteBox) -> None:
    name, trace, tight = ref.name, ref.trace, dtype == "float32"
    handle: dict[str, Any] = {}

    def model():  # loaded on first use, so a failed part does not take the later ones with it
        if "model" not in handle:
            handle["model"] = load_model(name, device=device, dtype=dtype)
        return handle["model"]

    def bridge_vs_hf():
        fresh = model()  # untouched so far: plain HF logits before any bridge exists
        ids = torch.tensor([ref.ids], device=fresh.device)
        with torch.no_grad():
            plain = fresh.hf_model(ids).logits
            bridged = fresh.bridge()(ids)
        runner = hooked(fresh)
        chunked = runner.logits(runner.run(ids, query_chunk=13, keep_hidden=True).hidden)
        return max_diff(bridged, plain), {"chunked_hooked_vs_hf": max_diff(chunked, plain),
                                          "logit_scale": float(plain.float().abs().max())}

    def device_vs_cpu():
        with torch.no_grad():
            return max_diff(model().hf_model(torch.tensor([ref.ids], device=model().device)).logits, ref.logits)

    def streaming_vs_naive():
        streamed = sentence_attention(model(), trace, query_chunk=7).matrix
        return max_diff(streamed, naive_sentence_attention(model(), trace).matrix)

    def reuse_vs_recompute():
        config = SuppressionConfig(sources=(0, 4, 9))
        reused = suppression_matrix(model(), trace, config)
        naive = suppression_matrix(model(), trace, replace(config, reuse_kv=False))
        return max_diff(reused.raw[:, [0, 4, 9]], naive.raw[:, [0, 4, 9]]), {
            "answer": max_diff(reused.answer[[0, 4, 9]], naive.answer[[0, 4, 9]])}

    def versus_cpu():
        heads = receiver_heads(model(), [trace, make_trace("t2", 12)], ReceiverConfig(top_k=3)).heads
        suppression = suppression_matrix(model(), trace, SuppressionConfig(sources=(0, 4, 9))).raw
        return max_diff(sentence_attention(model(), trace).matrix, ref.attention), {
            "suppression_raw_vs_cpu": max_diff(suppression, ref.suppression),
            "top3_receiver_heads_same_as_cpu": list(heads) == list(ref.heads),
            "heads": [list(h) for h in heads], "cpu_heads": [list(h) for h in ref.heads]}

    run.part("a bridge vs HF eager", name, dtype, "max|Δlogit|", bridge_vs_hf, 1e-4 if tight else None)
    run.part("b device vs CPU fp32", name, dtype, "max|Δlogit|", device_vs_cpu, 1e-3 if tight else None)
    run.part("c streaming vs naive attn", name, dtype, "max|Δ|", streaming_vs_naive, 1e-5 if tight else None)
    run.part("d suppression KV reuse vs recompute", name, dtype, "max|Δ ln KL|", reuse_vs_recompute,
             1e-3 if tight else None)
    run.part("e device vs CPU: receiver matrix", name, dtype, "max|Δ|", versus_cpu, 1e-4 if tight else None)


# --- (f): the engine ----------------------------------------------------------------------------------------


def nested_requests(handle, n: int, seed: int = 1) -> list[PrefixRequest]:
    ids = handle.encode_prompt("What is 2+2?", "First, add two and two. That makes four. So the answer")
    cuts = [len(ids) - 12, len(ids) - 6, len(ids)]
    return [PrefixRequest(key=f"t/{i}", prompt_text=handle.decode(ids[:cut]), prompt_ids=tuple(ids[:cut]), n=n,
                          seed=seed + i) for i, cut in enumerate(cuts)]


def token_ids(engine: LocalEngine, params: SamplingParams, n: int) -> list[list[int]]:
    out = collect_rollouts(engine, nested_requests(engine.handle, n), params, progress=False)
    return [list(r.token_ids) for key in sorted(out) for r in sorted(out[key], key=lambda r: r.index)]


def engine_parts(run: Runner, device: str, dtype: str, name: str, cpu_greedy: list[list[int]], new: int) -> None:
    held: dict[str, LocalEngine] = {}

    def engine() -> LocalEngine:
        if "engine" not in held:
            held["engine"] = LocalEngine(load_model(name, device=device, dtype=dtype), batch_size=4)
        return held["engine"]

    def same_seed_twice():
        params = SamplingParams(max_new_tokens=new, temperature=1.0, top_p=0.9)
        first, second = token_ids(engine(), params, 6), token_ids(engine(), params, 6)
        return sum(a != b for a, b in zip(first, second)), {"rollouts": len(first),
                                                            "distinct": len({tuple(t) for t in first})}

    def greedy_vs_cpu():
        if not cpu_greedy:
            raise RuntimeError("no CPU greedy reference (its part failed)")
        got = token_ids(engine(), SamplingParams(max_new_tokens=new, temperature=0.0), 2)
        pairs = [(a, b) for x, y in zip(got, cpu_greedy) for a, b in zip(x, y)]
        first_split = [next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), None) for x, y in zip(got, cpu_greedy)]
        agreement = sum(a == b for a, b in pairs) / max(len(pairs), 1)
        return agreement, {"first_divergence": first_split, "tokens": len(pairs)}

    run.part("f engine same seed twice", name, dtype, "rollouts differing", same_seed_twice, 0)
    # Reported, not held to a limit: a near-tie in a random model's logits may flip one argmax on another device.
    run.part("f greedy device vs CPU fp32", name, dtype, "token agreement", greedy_vs_cpu)


# --- (g): throughput ----------------------------------------------------------------------------------------


def smollm_shaped_folder(config_dir: Path, seed: int = 0) -> Path:
    """A model folder with SmolLM2-135M's config and tokenizer and random weights (bf16), in a temporary folder."""
    import transformers

    folder = Path(tempfile.mkdtemp(prefix="smollm2-random-"))
    for file in config_dir.iterdir():
        if file.name != "model.safetensors" and file.is_file() and file.suffix in (".json", ".jinja"):
            shutil.copy(file, folder / file.name)
    config = transformers.AutoConfig.from_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config)
    model.to(torch.bfloat16).save_pretrained(folder)
    return folder


def throughput_part(run: Runner, args: argparse.Namespace) -> None:
    from rollout_engine import prefixes, run_batched_generate, run_engine

    dtype = args.throughput_dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    config_dir = next((p for p in (Path(args.smollm_config), REPO / ".gpu_kit" / "smollm2-135m-config")
                       if (p / "config.json").is_file()), None)

    def measure():
        if config_dir is None:
            raise FileNotFoundError(f"no SmolLM2 config in {args.smollm_config} (run benchmarks/gpu_kit.sh)")
        folder = smollm_shaped_folder(config_dir)
        try:
            handle = load_model(folder, device=args.device, dtype=dtype)
            params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.6, top_p=0.95,
                                    stop_after_boxed_answer=False)
            engine = LocalEngine(handle, batch_size=args.rollouts)
            all_ids = prefixes(handle, args.prefixes)
            run_engine(engine, all_ids[0], replace(params, max_new_tokens=4), 2, "warm")  # CUDA kernels, allocator
            run_batched_generate(handle, all_ids[0], replace(params, max_new_tokens=4), 2)
            rates: dict[str, list[float]] = {"engine": [], "generate": []}
            done = 0
            for rep in range(args.reps):
                if rep > 0 and run.over_budget():
                    break  # fewer repetitions rather than none: the JSON says how many ran
                done += 1
                for p, ids in enumerate(all_ids):
                    for method in ("engine", "generate") if (rep + p) % 2 == 0 else ("generate", "engine"):
                        timing = (run_engine(engine, ids, params, args.rollouts, f"bench/{rep}/{p}")
                                  if method == "engine" else run_batched_generate(handle, ids, params, args.rollouts))
                        _sync(args.device)
                        rates[method].append(timing.rate)
            # Per repetition, the median over prefixes; then the median over repetitions.
            per_rep = {m: [statistics.median(v[r * len(all_ids):(r + 1) * len(all_ids)]) for r in range(done)]
                       for m, v in rates.items()}
            engine_rate, generate_rate = (statistics.median(per_rep[m]) for m in ("engine", "generate"))
            return engine_rate / generate_rate, {
                "engine_tokens_per_s": engine_rate, "generate_tokens_per_s": generate_rate,
                "per_repetition": per_rep, "prefix_tokens": [len(i) for i in all_ids],
                "rollouts": args.rollouts, "new_tokens": args.new_tokens, "reps": done,
                "parameters": sum(p.numel() for p in handle.hf_model.parameters())}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    run.part("g throughput engine / generate", "smollm2-135m-shaped (random)", dtype, "× tokens/s", measure)

    def profile():
        if config_dir is None:
            raise FileNotFoundError(f"no SmolLM2 config in {args.smollm_config} (run benchmarks/gpu_kit.sh)")
        folder = smollm_shaped_folder(config_dir)
        try:
            handle = load_model(folder, device=args.device, dtype=dtype)
            engine = LocalEngine(handle, batch_size=args.rollouts)
            params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.6, top_p=0.95, stop_after_boxed_answer=False)
            ids = prefixes(handle, args.prefixes)[-1]
            run_engine(engine, ids, replace(params, max_new_tokens=4), 2, "warm")
            return engine_profile(engine, ids, params, args)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    run.part("h engine profile", "smollm2-135m-shaped (random)", dtype, "steps", profile)


def engine_profile(engine: LocalEngine, ids: tuple[int, ...], params: SamplingParams,
                   args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from rollout_engine import run_engine

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    with torch_profile(activities=activities) as prof:
        timing = run_engine(engine, ids, params, args.rollouts, "profiled")
        _sync(args.device)
    events = prof.key_averages()
    steps = sum(e.count for e in events if e.key == "aten::embedding")  # one per forward
    device_sort = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    counts = {e.key: e.count for e in events if any(w in e.key for w in ("Synchronize", "Memcpy", "aten::item",
                                                                        "aten::_local_scalar_dense", "aten::nonzero"))}
    return steps, {"tokens_per_s": timing.rate, "per_step": {k: round(v / max(steps, 1), 2) for k, v in counts.items()},
                   "by_device_time": events.table(sort_by=device_sort, row_limit=25),
                   "by_host_time": events.table(sort_by="self_cpu_time_total", row_limit=25)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- report -------------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _row(check: Check) -> str:
    verdict = {True: "ok", False: "FAIL", None: "-"}[check.ok]
    if check.error and check.error.startswith("skipped"):
        verdict = "SKIP"
    extras = {k: v for k, v in check.detail.items() if k != "traceback" and not k.startswith("by_")}  # tables: JSON
    shown = check.error or (_fmt(check.value) + (f" (≤ {check.limit:g})" if check.limit is not None else ""))
    extra = " ".join(f"{k}={_fmt(v)}" for k, v in extras.items())
    return f"| {check.part} | {check.model} | {check.dtype} | {check.metric} | {shown} | {verdict} | " \
           f"{check.seconds:.1f}s | {extra} |"


def environment(device: str) -> dict[str, Any]:
    import transformers

    info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "transformers": transformers.__version__, "device": device, "threads": torch.get_num_threads()}
    try:
        from importlib.metadata import version

        import transformer_lens  # noqa: F401  (that it imports is part of the answer)

        info["transformer_lens"] = version("transformer-lens")
    except Exception as error:
        info["transformer_lens"] = f"import failed: {error}"
    if device.startswith("cuda") and torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--models", nargs="+", default=list(TINY))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES))
    parser.add_argument("--engine-tokens", type=int, default=24, help="new tokens per rollout in (f)")
    parser.add_argument("--rollouts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefixes", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--throughput-dtype", default=None, help="default bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--smollm-config", default=str(REPO / ".gpu_kit" / "smollm2-135m-config"))
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--small", action="store_true", help="a quick try: (g) with 4 rollouts × 8 tokens, 2 prefixes, 1 rep")
    parser.add_argument("--time-budget", type=float, default=150.0,
                        help="seconds; parts that would start after it are skipped, (g) stops repeating")
    args = parser.parse_args()
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the table is the output; no weight-loading bars
    if args.small:
        args.rollouts, args.new_tokens, args.prefixes, args.reps = 4, 8, 2, 1

    env = environment(args.device)
    run = Runner(args.time_budget, Path(args.out), env, args)
    print(json.dumps(env))
    print("| part | model | dtype | metric | value | verdict | time | detail |\n|---|---|---|---|---|---|---|---|")
    trace = make_trace()
    for name in args.models:
        refs: dict[str, WhiteBox] = {}
        greedy: list[list[int]] = []

        def whitebox_reference():
            refs["wb"] = WhiteBox(name, trace)
            return len(refs["wb"].ids), {"tokens": "in the trace"}

        def greedy_reference():
            cpu_engine = LocalEngine(load_model(name, device="cpu"), batch_size=4)
            greedy.extend(token_ids(cpu_engine, SamplingParams(max_new_tokens=args.engine_tokens, temperature=0.0), 2))
            return sum(map(len, greedy))

        run.part("CPU fp32 white-box references", name, "float32", "tokens", whitebox_reference)
        run.part("CPU fp32 greedy reference", name, "float32", "tokens", greedy_reference)
        for dtype in args.dtypes:
            if "wb" in refs:
                whitebox_parts(run, args.device, dtype, refs["wb"])
            engine_parts(run, args.device, dtype, name, greedy, args.engine_tokens)
    if not args.skip_throughput:
        throughput_part(run, args)

    summary = run.save()
    for check in run.checks:
        if "by_device_time" in check.detail:
            print(f"\n{check.part}, costliest ops by device time:\n{check.detail['by_device_time']}")
    failed = [c for c in run.checks if c.ok is False]
    print(f"\n{len(run.checks)} parts, {len(failed)} failed or skipped, {summary['seconds']:.0f} s; wrote {args.out}")
    for check in failed:
        print(f"  FAILED: {check.part} / {check.model} / {check.dtype}: {check.error or check.value}")
        if "traceback" in check.detail:
            print("    " + check.detail["traceback"].strip().splitlines()[-1])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
