"""How well does the offline tagger agree with the Thought Anchors authors' labels? One run, one table.

Reference: the first function tag of every sentence in the authors' released chunks_labeled.json files
(../shared/data/thought-anchors-viewer, 20 traces of 5 problems, labelled by the authors' LLM call).
Rows of the table:

  (a) project   the bundled model: fitted on the labelled set written for this project only (no shared data);
                evaluated on every shared sentence.
  (b) refit     refitted on the shared data of 4 problems, evaluated on the 5th (leave one problem out, so no
                problem is seen in training and test; predictions of the 5 folds pooled).
  (c) both      the project set plus the 4 training problems, same folds as (b).
  project CV    5-fold cross-validation on the project set itself, folds by trace (in-domain reference).
  transfer      fitted on the project's first 52 (short, clean) traces, evaluated on its other traces (long,
                R1-distill-like): a check of how features carry over to another style of text that needs no
                shared data (it and (b) chose the features; (a) did not).
  majority      always the most frequent tag of the shared data (floor).
  (d) llm       with --llm: the LLM labeller on the endpoint of $ANCHORS_LABEL_BASE_URL ($ANCHORS_LABEL_MODEL), on
                the first --llm-traces traces (each trace's sentences as the authors split them, one request each).

Also checked: refitting the project set reproduces the bundled model's coefficients (training is deterministic),
and how fast the offline tagger labels (sentences per second: embeddings computed trace by trace, computed
ahead for all traces, cached). With --curve: the learning curve on the authors' labels (fit on k of the other
problems, k = 1..4, up to 3 combinations each; mean macro-F1 on the held-out problem).

Run: PYTHONPATH=src python benchmarks/taxonomy.py [--data DIR] [--curve] [--llm [--llm-traces N]]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from unittest import mock

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from anchors.labels import offline
from anchors.labels.api import label_with, resolve_labeller
from anchors.labels.dataset import LabelledTrace, bundled_labelled, labelled_from_thought_anchors
from anchors.labels.offline import OfflineTagger, fit_offline
from anchors.traces.taxonomy import THOUGHT_ANCHORS

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thought-anchors-viewer"
Predictor = Callable[[LabelledTrace], list[str]]


def problem_of(trace: LabelledTrace) -> str:
    """'deepseek-r1-distill-qwen-14b--correct_base_solution--problem_330' -> 'problem_330'."""
    return trace.id.split("--")[-1]


def pooled(pairs: Sequence[tuple[list[str], list[str]]]) -> tuple[list[str], list[str]]:
    truth = [tag for t, _ in pairs for tag in t]
    predicted = [tag for _, p in pairs for tag in p]
    return truth, predicted


def evaluate(model: OfflineTagger, traces: Sequence[LabelledTrace]) -> list[tuple[list[str], list[str]]]:
    return [(t.primary_tags, model.predict(t.texts, t.problem)) for t in traces]


def leave_one_problem_out(shared: list[LabelledTrace], extra: list[LabelledTrace]) -> list[tuple[list[str], list[str]]]:
    pairs = []
    for held in sorted({problem_of(t) for t in shared}):
        train = [t for t in shared if problem_of(t) != held] + extra
        model = fit_offline(train, trained_on=f"shared-without-{held}")
        pairs += evaluate(model, [t for t in shared if problem_of(t) == held])
    return pairs


def project_cv(project: list[LabelledTrace], folds: int = 5) -> list[tuple[list[str], list[str]]]:
    pairs = []
    for fold in range(folds):
        train = [t for i, t in enumerate(project) if i % folds != fold]
        model = fit_offline(train, trained_on=f"project-fold-{fold}")
        pairs += evaluate(model, [t for i, t in enumerate(project) if i % folds == fold])
    return pairs


def project_transfer(project: list[LabelledTrace]) -> list[tuple[list[str], list[str]]]:
    short = [t for t in project if "style" not in t.metadata]
    model = fit_offline(short, trained_on="project-short")
    return evaluate(model, [t for t in project if "style" in t.metadata])


def learning_curve(shared: list[LabelledTrace], combinations_each: int = 3) -> dict[int, float]:
    """Mean per-held-out-problem macro-F1 after fitting on k of the other problems' authors' labels."""
    problems = sorted({problem_of(t) for t in shared})
    curve = {}
    for k in range(1, len(problems)):
        results = []
        for held in problems:
            test = [t for t in shared if problem_of(t) == held]
            others = [p for p in problems if p != held]
            for chosen in list(itertools.combinations(others, k))[:combinations_each]:
                model = fit_offline([t for t in shared if problem_of(t) in chosen], trained_on=f"{k}-problems")
                results.append(scores(*pooled(evaluate(model, test)))["macro"])
        curve[k] = float(np.mean(results))
    return curve


def scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    tags = list(THOUGHT_ANCHORS.names)
    per_tag = f1_score(truth, predicted, labels=tags, average=None, zero_division=0)
    return {"macro": f1_score(truth, predicted, labels=tags, average="macro", zero_division=0),
            "accuracy": accuracy_score(truth, predicted), **dict(zip(tags, per_tag))}


def llm_pairs(traces: Sequence[LabelledTrace]) -> list[tuple[list[str], list[str]]]:
    """The LLM labeller's first tags for each trace (endpoint from the environment, as `anchors label` uses it)."""
    labeller = resolve_labeller("llm")
    return [(t.primary_tags, list(label_with(labeller, t.texts, problem=t.problem, trace_id=t.id).tags)) for t in traces]


def print_table(rows: dict[str, dict[str, float]], support: Counter[str]) -> None:
    names = list(rows)
    print(f"{'':24}" + "".join(f"{n:>12}" for n in names) + f"{'support':>10}")
    for key in ["macro", "accuracy", *THOUGHT_ANCHORS.names]:
        label = {"macro": "macro-F1", "accuracy": "accuracy"}.get(key, f"F1 {key}")
        cells = "".join(f"{rows[n][key]:>12.3f}" for n in names)
        print(f"{label:24}{cells}{support.get(key, ''):>10}")


def check_reproducible(project: list[LabelledTrace]) -> float:
    refit, bundled = fit_offline(project, trained_on="tag_sentences.jsonl"), OfflineTagger.bundled()
    if refit.classes != bundled.classes or refit.coef.shape != bundled.coef.shape:
        return float("inf")
    return float(np.abs(refit.coef - bundled.coef).max())


def labelling_rate(model: OfflineTagger, traces: list[LabelledTrace], embed_ahead: bool = False) -> float:
    start = time.perf_counter()
    if embed_ahead:
        model.embed_ahead([text for t in traces for text in t.texts])
    count = sum(len(model.predict(t.texts, t.problem)) for t in traces)
    return count / (time.perf_counter() - start)


def labelling_rates(traces: list[LabelledTrace]) -> dict[str, float]:
    """Sentences/s from a fresh embedding cache: trace by trace, with all embeddings computed ahead in one go
    (what `label_traces` and `anchors label` do), and again with every embedding cached."""
    rates = {}
    for way in ("trace by trace", "embedded ahead"):
        with tempfile.TemporaryDirectory() as empty_cache, mock.patch.dict(os.environ, {"ANCHORS_CACHE": empty_cache}):
            offline._embedder.cache_clear()  # a new embedder, whose cache is the empty folder
            try:
                model = OfflineTagger.bundled()
                model.predict(traces[0].texts[:2])  # load the embedder outside the timing
                rates[way] = labelling_rate(model, traces, embed_ahead=way == "embedded ahead")
                rates["cached"] = labelling_rate(model, traces)
            finally:
                offline._embedder.cache_clear()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("ANCHORS_TA_DATA", DEFAULT_DATA)))
    parser.add_argument("--curve", action="store_true", help="also the learning curve on the authors' labels (~1.5 min)")
    parser.add_argument("--llm", action="store_true", help="also score the LLM labeller of $ANCHORS_LABEL_BASE_URL")
    parser.add_argument("--llm-traces", type=int, default=20, help="how many shared traces the LLM labels (default all 20)")
    args = parser.parse_args()
    shared, project = labelled_from_thought_anchors(args.data), bundled_labelled()
    truth_all = [tag for t in shared for tag in t.primary_tags]
    majority = Counter(truth_all).most_common(1)[0][0]
    rows = {
        "(a) project": scores(*pooled(evaluate(OfflineTagger.bundled(), shared))),
        "(b) refit": scores(*pooled(leave_one_problem_out(shared, []))),
        "(c) both": scores(*pooled(leave_one_problem_out(shared, project))),
        "project CV": scores(*pooled(project_cv(project))),
        "transfer": scores(*pooled(project_transfer(project))),
        "majority": scores(truth_all, [majority] * len(truth_all)),
    }
    if args.llm:
        rows["(d) llm"] = scores(*pooled(llm_pairs(shared[: args.llm_traces])))
    print(f"shared data: {len(shared)} traces, {len(truth_all)} sentences, {len({problem_of(t) for t in shared})} problems; "
          f"project set: {len(project)} traces, {sum(len(t.sentences) for t in project)} sentences")
    print_table(rows, Counter(truth_all))
    print(f"\nrefitting the project set reproduces the bundled model: max |coef difference| = {check_reproducible(project):.2e}")
    if args.curve:
        curve = learning_curve(shared)
        print("learning curve on the authors' labels (problems fitted on: mean macro-F1 on a held-out problem): "
              + ", ".join(f"{k}: {value:.3f}" for k, value in curve.items()))
    rates = labelling_rates(shared)
    print("offline labelling rate (sentences/s, one process): " + ", ".join(f"{way} {rate:.0f}" for way, rate in rates.items()))


if __name__ == "__main__":
    main()
