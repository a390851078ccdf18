"""Scale-out benchmark: rollouts/s of one job on Ray workers against one process, in one run.

Part 1, local engines on a tiny random model (`--model tiny-qwen2`, CPU), the same job (`--traces` traces ×
`--prefixes` nested prefixes × one block of 10 rollouts, `--new-tokens` each) three ways:

  (a) one process: the engine on the whole request list, `--threads` torch threads
  (b) Ray, 1 worker with `--threads` threads, units of `--unit` rollouts
  (c) Ray, 2 workers with `--threads`/2 threads each (the same CPUs in all, split), the same units

Part 2, the same kind of job on SmolLM2-135M served by 2 llama.cpp servers on loopback (llama-cpp-python,
one thread and one call at a time each; `--server-*` sizes):

  (d) one client, one server
  (e) one client, both servers (each takes the next prefix block when free)
  (f) Ray, 2 workers, each a client of one server

Ray's workers start before the timing (a worker loads torch and the model once per command). Configurations run
in turn within each of `--repeats` rounds, so a busy machine slows them alike; the tables give medians over
rounds and ratios to (a) or (d) taken within each round. Only rates are compared: the rollouts of (a), (b) and
(c) are not the same floats (different batch layouts), and llama.cpp's sampling is the server's.

Run: PYTHONPATH=src python benchmarks/scale.py [--part engines|servers|both] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import collect_rollouts

PROBLEM = "Tom has 12 apples. He gives 5 to his sister and buys 8 more. How many apples does he have now?"
THINKING = ("Tom starts with 12 apples. He gives 5 away, so 12 - 5 = 7 are left. Then he buys 8 more. "
            "Adding them gives 7 + 8 = 15 apples. Let me check this again. 12 minus 5 is 7, and 7 plus 8 is 15. "
            "So Tom has 15 apples now. The answer is 15.")


def job(template, traces: int, prefixes: int) -> list[PrefixRequest]:
    """Nested prefixes of the thinking (one per sentence-ish cut), one block of 10 rollouts each, per trace."""
    words = THINKING.split(" ")
    out = []
    for t in range(traces):
        for i in range(prefixes):
            cut = max(3, len(words) * (i + 1) // prefixes)
            prompt = template.render(f"{PROBLEM} (#{t})", " ".join(words[:cut]))
            out.append(PrefixRequest(key=f"t{t}/resample/{i}/0", prompt_text=prompt, n=10, seed=1000 * t + i))
    return out


def timed(sampler, requests: list[PrefixRequest], params: SamplingParams) -> tuple[float, int, int]:
    """(seconds, rollouts, new tokens) of one in-memory job."""
    began = time.perf_counter()
    got = collect_rollouts(sampler, requests, params, progress=False, errors="keep")
    seconds = time.perf_counter() - began
    rollouts = [r for v in got.values() for r in v if r.ok]
    return seconds, len(rollouts), sum(r.completion_tokens for r in rollouts)


def rounds(configs: dict[str, Callable[[], tuple[float, int, int]]], repeats: int, baseline: str) -> None:
    rates: dict[str, list[float]] = {name: [] for name in configs}
    ratios: dict[str, list[float]] = {name: [] for name in configs}
    totals: dict[str, tuple[int, int]] = {}
    for _ in range(repeats):
        this_round = {}
        for name, run in configs.items():
            seconds, rollouts, tokens = run()
            this_round[name] = rollouts / seconds
            totals[name] = (rollouts, tokens)
            print(f"  {name}: {rollouts} rollouts, {tokens} tokens in {seconds:.2f} s", file=sys.stderr, flush=True)
        for name, rate in this_round.items():
            rates[name].append(rate)
            ratios[name].append(rate / this_round[baseline])
    print(f"| configuration | median rollouts/s | median × vs {baseline.split()[0]} | rollouts | new tokens |")
    print("|---|---|---|---|---|")
    for name in configs:
        rollouts, tokens = totals[name]
        print(f"| {name} | {statistics.median(rates[name]):.2f} | {statistics.median(ratios[name]):.2f} | "
              f"{rollouts} | {tokens} |")


def engines(args: argparse.Namespace) -> None:
    import torch

    from anchors.models import load_model
    from anchors.rollouts.cluster import RaySampler, SamplerSpec, connect
    from anchors.rollouts.local import LocalEngine

    torch.set_num_threads(args.threads)
    handle = load_model(args.model, device="cpu")
    requests = job(handle.template, args.traces, args.prefixes)
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.6, top_p=0.95)
    # Ray's CPUs are logical: (b)'s worker reserves --threads and (c)'s two workers half as many each, and both
    # samplers stay up for the whole run. Only one configuration computes at a time, so the reservation is
    # bookkeeping; with --threads CPUs in all, (c)'s workers would wait for (b)'s CPUs that are never released.
    connect("local", cpus=2 * args.threads)
    spec = SamplerSpec(args.model, options=(("device", "cpu"), ("batch_size", args.batch_size)))
    one = RaySampler([spec], rollouts_per_unit=args.unit, threads=args.threads)
    two = RaySampler([spec, spec], rollouts_per_unit=args.unit, threads=max(1, args.threads // 2))
    print(f"\n{args.model}, CPU, {len(requests)} requests × 10 rollouts × ≤{args.new_tokens} tokens, "
          f"{args.threads} threads in all, units of {args.unit} rollouts, batch size {args.batch_size}\n")
    engine = LocalEngine(handle, batch_size=args.batch_size)
    rounds({"(a) one process": lambda: timed(engine, requests, params),
            "(b) Ray, 1 worker": lambda: timed(one, requests, params),
            "(c) Ray, 2 workers": lambda: timed(two, requests, params)}, args.repeats, "(a) one process")
    one.close()
    two.close()


def servers(args: argparse.Namespace) -> None:
    from anchors.models.bundled import BUNDLED_MODELS, bundled_gguf_path
    from anchors.models.templates import make_template
    from anchors.rollouts.cluster import RaySampler, SamplerSpec, connect
    from anchors.rollouts.server import OpenAICompatibleSampler

    gguf = bundled_gguf_path(BUNDLED_MODELS["smollm2-135m"])
    if gguf is None:
        sys.exit("the bundled SmolLM2 GGUF is not installed (make install)")
    logs = Path(tempfile.mkdtemp(prefix="anchors-scale-"))
    launched = [launch(gguf, logs / f"server{i}.log") for i in range(2)]
    try:
        urls = [url for url, _ in launched]
        requests = job(make_template("r1-distill", "smollm2"), args.server_traces, args.server_prefixes)
        params = SamplingParams(max_new_tokens=args.server_new_tokens, temperature=0.6, top_p=0.95)
        client = {"server_kind": "llama.cpp", "concurrency": 1}
        connect("local", cpus=2)
        ray_two = RaySampler([SamplerSpec("smollm2", (url,), tuple(client.items())) for url in urls],
                             rollouts_per_unit=10, actor_options={"num_cpus": 0})
        print(f"\nSmolLM2-135M on llama.cpp (1 thread, 1 call at a time per server), {len(requests)} requests × 10 "
              f"rollouts × ≤{args.server_new_tokens} tokens\n")
        rounds({"(d) 1 server": lambda: timed(OpenAICompatibleSampler(urls[:1], "smollm2", **client), requests, params),
                "(e) 2 servers, one client": lambda: timed(OpenAICompatibleSampler(urls, "smollm2", **client), requests,
                                                           params),
                "(f) 2 servers, Ray, 2 workers": lambda: timed(ray_two, requests, params)},
               args.repeats, "(d) 1 server")
        ray_two.close()
    finally:
        for _, process in launched:
            process.kill()
            process.wait()


def launch(gguf: Path, log: Path) -> tuple[str, subprocess.Popen]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, serving `gguf` as 'smollm2'."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("ab") as sink:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias",
                                    "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
                                    "--n_threads", "1", "--interrupt_requests", "False"], stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"llama.cpp server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    sys.exit("llama.cpp server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("engines", "servers", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="tiny-qwen2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--traces", type=int, default=2)
    parser.add_argument("--prefixes", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unit", type=int, default=40, help="rollouts per Ray work unit")
    parser.add_argument("--server-traces", type=int, default=1)
    parser.add_argument("--server-prefixes", type=int, default=4)
    parser.add_argument("--server-new-tokens", type=int, default=16)
    args = parser.parse_args()
    if args.part in ("engines", "both"):
        engines(args)
    if args.part in ("servers", "both"):
        import ray

        ray.shutdown()  # part 2 starts its own local cluster (CPU accounting of its own)
        servers(args)


if __name__ == "__main__":
    main()
