"""Adaptive vs fixed sampling: do the top-3 anchors agree, and how many rollouts does each use?

For each trace, score it once with a fixed number of rollouts per prefix and once with `--adaptive`
(rounds until every sentence's counterfactual-KL interval is narrower than the target, capped at the same
fixed number); compare the sets of top-3 sentences by counterfactual KL and the rollouts sampled.

  python benchmarks/adaptive.py                              # scripted worlds with three planted sentences
  python benchmarks/adaptive.py --model smollm2-135m --traces examples/traces.jsonl --fixed 16 --limit 2

Scripted worlds: each trace has 10 sentences, three of them decisive with graded effects (the main one moves
P(correct) from 0.1 to 0.9; lacking either of the two others, a rollout headed for the right answer gives that
sentence's own wrong answer with probability 0.8 or 0.5), one overdetermined decoy, six that do not matter. The target the issue
sets: the same top-3 in ≥ 90% of traces with ≤ 50% of the rollouts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from anchors.methods.blackbox.adaptive import AdaptiveConfig, score_trace_adaptive
from anchors.methods.blackbox.config import BlackBoxConfig
from anchors.methods.blackbox.scores import TraceScores, score_trace
from anchors.models.templates import paper_template
from anchors.testing import PlantedWorld


def scripted_worlds(count: int, seed: int) -> list[PlantedWorld]:
    rng = np.random.default_rng(seed)
    worlds = []
    for _ in range(count):
        picks = rng.choice(10, size=4, replace=False)
        main, strong, weak = sorted(int(p) for p in picks[:3])  # the main sentence first: the others' effects show
        worlds.append(PlantedWorld(n_sentences=10, planted=main, decoy=int(picks[3]),
                                   extra_planted=((strong, 0.8), (weak, 0.5))))
    return worlds


def planted(world: PlantedWorld) -> set[int]:
    return {world.planted, *(t for t, _ in world.extra_planted)}


def top3(scores: TraceScores) -> set[int]:
    return set(scores.top(3)["index"].tolist())


def used(scores: TraceScores) -> int:
    return int(scores.run["rollouts_resampled"]) + int(scores.run["rollouts_failed"])


def run_scripted(args: argparse.Namespace) -> list[tuple[str, bool, int, int, float, float]]:
    rows = []
    for k, world in enumerate(scripted_worlds(args.count, args.seed)):
        config = BlackBoxConfig(rollouts=args.fixed, forced=False, matrix=False, bootstrap=args.bootstrap, seed=k)
        plan = AdaptiveConfig(initial=args.initial, step=args.step, max_rollouts=args.fixed, target_width=args.target_width,
                              top_k=args.top_k or None)
        started = time.perf_counter()
        fixed = score_trace(world.trace(f"world-{k}"), world.sampler(), paper_template(), config, embedder=world.embedder(), progress=False)
        middle = time.perf_counter()
        adaptive = score_trace_adaptive(world.trace(f"world-{k}"), world.sampler(), paper_template(), world.embedder(), config, plan, progress=False)
        rows.append((f"world-{k}", top3(fixed) == top3(adaptive), used(fixed), used(adaptive),
                     middle - started, time.perf_counter() - middle))
    return rows


def run_model(args: argparse.Namespace) -> list[tuple[str, bool, int, int, float, float]]:
    from anchors.models.embeddings import SentenceEmbedder
    from anchors.rollouts.factory import make_sampler
    from anchors.traces.jsonl import read_traces

    sampler, embedder = make_sampler(args.model), SentenceEmbedder()
    handle = sampler.handle
    rows = []
    for trace in list(read_traces(args.traces))[: args.limit]:
        config = BlackBoxConfig(rollouts=args.fixed, forced=False, matrix=False, bootstrap=args.bootstrap,
                                max_new_tokens=args.max_new_tokens)
        plan = AdaptiveConfig(initial=args.initial, step=args.step, max_rollouts=args.fixed, target_width=args.target_width,
                              top_k=args.top_k or None)
        started = time.perf_counter()
        fixed = score_trace(trace, sampler, handle.template, config, embedder=embedder, progress=False)
        middle = time.perf_counter()
        adaptive = score_trace_adaptive(trace, sampler, handle.template, embedder, config, plan, progress=False)
        rows.append((trace.id, top3(fixed) == top3(adaptive), used(fixed), used(adaptive),
                     middle - started, time.perf_counter() - middle))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20, help="scripted worlds (traces)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed", type=int, default=50, help="rollouts per prefix of the fixed run (and the adaptive cap)")
    parser.add_argument("--initial", type=int, default=10)
    parser.add_argument("--step", type=int, default=5)
    parser.add_argument("--target-width", type=float, default=1.5)
    parser.add_argument("--top-k", type=int, default=3, help="separation rule (0: the width rule alone)")
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument("--model", help="score real traces with this model instead of scripted worlds")
    parser.add_argument("--traces", default="examples/traces.jsonl")
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    os.environ.setdefault("ANCHORS_NO_CACHE", "1")  # scripted grades need no file cache
    rows = run_model(args) if args.model else run_scripted(args)
    print(f"{'trace':<14} {'same top-3':>10} {'fixed':>7} {'adaptive':>9} {'ratio':>6} {'fixed s':>8} {'adapt s':>8}")
    for name, same, fixed, adaptive, t_fixed, t_adaptive in rows:
        print(f"{name:<14} {same!s:>10} {fixed:>7} {adaptive:>9} {adaptive / fixed:>6.2f} {t_fixed:>8.2f} {t_adaptive:>8.2f}")
    agree = sum(r[1] for r in rows) / len(rows)
    ratio = sum(r[3] for r in rows) / sum(r[2] for r in rows)
    print(f"\nsame top-3 in {agree:.0%} of {len(rows)} traces; adaptive used {ratio:.0%} of the fixed run's rollouts "
          f"(median per trace {statistics.median(r[3] / r[2] for r in rows):.0%}); "
          f"target: ≥ 90% agreement with ≤ 50% of the rollouts")


if __name__ == "__main__":
    main()
