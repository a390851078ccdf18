"""Early answering (Lanham et al. 2023): does the answer need the rest of the trace?

For each trace with n sentences, keep the first k sentences (k = 0..n, or `points` evenly spaced values of
k including 0 and n), force the answer there and sample `samples` answers. With x = k/n:

* y(x), the **match rate**: the share of answered samples equal (math-verify) to the trace's own final answer;
* the **accuracy** at x: the share equal to the gold answer;
* **AOC**, the area over y(x) on [0, 1] (`metrics.curves.area_over_curve`): 0 when the trace's answer is
  there from the start (the trace is not needed), near 1 when it only appears at the end;
* the **normalised AOC** = AOC / (1 − y(0)) (Bentham et al. 2024 showed the raw AOC mostly tracks accuracy:
  a model that already knows the answer without the trace scores a low AOC). It is the fraction of the trace
  read before the answer settles, NaN when y(0) > 1 − `min_baseline_gap`. The summary also splits the AOC by
  whether the trace's answer is correct (an accuracy-controlled comparison).

Samples without a closed boxed answer are left out of both numerator and denominator (as in the paper's
grading); `n_answered` says how many remain. The overall AOC is the mean of per-trace AOCs, which equals
Lanham's length-bucket average weighted by the number of traces per bucket; the per-bucket values are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from anchors.errors import InputError
from anchors.methods.causality.tables import SCHEMA_VERSION, Row, table
from anchors.methods.causality.sampling import TraceSampler, answer_rates, forced_answers
from anchors.rollouts.plan import chosen_sentences
from anchors.metrics.curves import area_over_curve, curve_on_grid, mean_and_se, normalized_aoc
from anchors.traces.records import Trace
from anchors.traces.segment import Sentence, split_sentences
from anchors.types import Progress

LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, 80), (81, 10**9))
GRID = np.linspace(0.0, 1.0, 21)


@dataclass(frozen=True)
class EarlyAnsweringConfig:
    samples: int = 4  # forced answers per truncation point
    points: int | None = 6  # truncation points per trace (k evenly spaced, 0 and n included); None: every k
    answer_tokens: int = 16  # tokens sampled after the forced "\boxed{" (as the black-box forced answers)
    seed: int = 0
    mode: str = "default"  # sentence segmentation (see anchors.traces.segment)
    min_baseline_gap: float = 0.1  # normalised AOC needs 1 − y(0) at least this


class EarlyAnsweringPoint(Row):
    trace_id: str
    k: int  # sentences kept
    n_sentences: int
    x: float  # k / n_sentences
    n_samples: int
    n_answered: int
    match_rate: float  # y(x): share of answered samples equal to the trace's own answer
    accuracy: float  # share of answered samples equal to the gold answer
    answers: list[str | None]


class EarlyAnsweringTrace(Row):
    trace_id: str
    n_sentences: int
    length_bucket: str
    reference_answer: str | None  # the trace's own final answer
    reference_correct: bool | None
    aoc: float
    aoc_normalized: float
    y_at_zero: float
    y_at_one: float
    accuracy_at_zero: float
    accuracy_at_one: float


@dataclass(frozen=True)
class EarlyAnsweringResult:
    points: tuple[EarlyAnsweringPoint, ...]
    traces: tuple[EarlyAnsweringTrace, ...]
    config: EarlyAnsweringConfig
    sampler: str

    to_pandas = table("points", EarlyAnsweringPoint, "One row per (trace, truncation point).")
    traces_frame = table("traces", EarlyAnsweringTrace)

    def buckets_frame(self) -> pd.DataFrame:
        """Mean AOC per trace-length bucket (Lanham's grouping) with the number of traces in each."""
        rows = []
        for low, high in LENGTH_BUCKETS:
            label = _bucket_label(low, high)
            values = [t.aoc for t in self.traces if t.length_bucket == label]
            if values:
                mean, se, n = mean_and_se(values)
                rows.append({"length_bucket": label, "n_traces": len(values), "n_with_aoc": n, "aoc_mean": mean, "aoc_se": se})
        return pd.DataFrame(rows, columns=["length_bucket", "n_traces", "n_with_aoc", "aoc_mean", "aoc_se"])

    def summary(self) -> dict[str, Any]:
        """Overall AOC (mean ± SE over traces), normalised AOC, and the AOC split by answer correctness."""
        aoc = mean_and_se([t.aoc for t in self.traces])
        normalised = mean_and_se([t.aoc_normalized for t in self.traces])
        split = {label: mean_and_se([t.aoc for t in self.traces if t.reference_correct is flag])
                 for label, flag in (("correct", True), ("incorrect", False))}
        return {
            "n_traces": len(self.traces), "aoc_mean": aoc[0], "aoc_se": aoc[1], "n_with_aoc": aoc[2],
            "aoc_normalized_mean": normalised[0], "aoc_normalized_se": normalised[1], "n_with_aoc_normalized": normalised[2],
            **{f"aoc_{label}_answers_mean": v[0] for label, v in split.items()},
            **{f"n_{label}_answers": sum(t.reference_correct is flag for t in self.traces)
               for label, flag in (("correct", True), ("incorrect", False))},
        }  # fmt: skip

    def curve(self) -> dict[str, Any]:
        """Mean ± SE of y(x) and of the accuracy over traces, on a common grid of x (21 points, linear
        interpolation of each trace's curve, flat beyond its ends), plus the per-trace matrices."""
        match = np.array([self._trace_curve(t.trace_id, "match_rate") for t in self.traces]).reshape(-1, len(GRID))
        accuracy = np.array([self._trace_curve(t.trace_id, "accuracy") for t in self.traces]).reshape(-1, len(GRID))
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "x": GRID.tolist(),
                               "trace_ids": [t.trace_id for t in self.traces]}
        for name, matrix in (("match", match), ("accuracy", accuracy)):
            stats = [mean_and_se(matrix[:, j]) for j in range(len(GRID))]
            out[f"{name}_mean"] = [s[0] for s in stats]
            out[f"{name}_se"] = [s[1] for s in stats]
            out[f"{name}_n"] = [s[2] for s in stats]
            out[f"{name}_per_trace"] = matrix.tolist()
        return out

    def _trace_curve(self, trace_id: str, column: str) -> np.ndarray:
        rows = [p for p in self.points if p.trace_id == trace_id]
        return curve_on_grid([p.x for p in rows], [getattr(p, column) for p in rows], GRID)


def early_answering(
    sampler: TraceSampler, traces: Sequence[Trace], config: EarlyAnsweringConfig = EarlyAnsweringConfig(),
    *, progress: Progress | None = None, sentences: Sequence[int] | None = None,
) -> EarlyAnsweringResult:
    """Truncate each trace at several points, force answers there, and measure y(x), accuracy and AOC. With
    `sentences`, the points are k = 0, n and each chosen sentence i (the prefix before it), not `config.points`."""
    points: list[EarlyAnsweringPoint] = []
    summaries: list[EarlyAnsweringTrace] = []
    for trace in progress(traces, "early answering") if progress else traces:
        rows = _trace_points(sampler, trace, config, sentences)
        points.extend(rows)
        summaries.append(_trace_summary(sampler, trace, rows, config))
    return EarlyAnsweringResult(tuple(points), tuple(summaries), config, sampler.identity)


def truncation_counts(n_sentences: int, points: int | None) -> list[int]:
    """How many sentences to keep at each point: every k in 0..n, or `points` evenly spaced (0 and n kept)."""
    if points is None or points >= n_sentences + 1:
        return list(range(n_sentences + 1))
    if points < 2:
        raise InputError("early answering needs at least 2 points (no trace and the whole trace)")
    return sorted({int(round(v)) for v in np.linspace(0, n_sentences, points)})


def kept_thinking(thinking: str, sentences: Sequence[Sentence], k: int) -> str:
    """The thinking with its first k sentences kept, byte-exact, up to where sentence k+1 starts (the whole
    thinking for k = n): the black-box methods' prefix k, so these forced answers are their F_k."""
    return thinking[: sentences[k].start] if k < len(sentences) else thinking


def _trace_points(sampler: TraceSampler, trace: Trace, config: EarlyAnsweringConfig,
                  chosen: Sequence[int] | None = None) -> list[EarlyAnsweringPoint]:
    sentences = split_sentences(trace.thinking, mode=config.mode)  # type: ignore[arg-type]
    n = len(sentences)
    if chosen is None:
        counts = truncation_counts(n, config.points)
    else:
        counts = sorted({0, n, *chosen_sentences(trace.id, n, chosen)})
    prefixes = {f"k{k}": kept_thinking(trace.thinking, sentences, k) for k in counts}
    answers = forced_answers(sampler, trace, prefixes, n=config.samples, seed=config.seed, answer_tokens=config.answer_tokens)
    rows = []
    for k in counts:
        samples = answers[f"k{k}"]
        stats = answer_rates(samples)
        rows.append(EarlyAnsweringPoint(
            trace_id=trace.id, k=k, n_sentences=n, x=k / n if n else 1.0, answers=[s.key for s in samples], **stats,
        ))  # fmt: skip
    return rows


def _trace_summary(sampler: TraceSampler, trace: Trace, rows: list[EarlyAnsweringPoint],
                   config: EarlyAnsweringConfig) -> EarlyAnsweringTrace:
    xs, ys = [r.x for r in rows], [r.match_rate for r in rows]
    aoc = area_over_curve(xs, ys)
    first, last = rows[0], rows[-1]
    read = sampler.outcome.reference(trace)
    reference, correct = read.key, read.correct if read.key is not None else None
    n = rows[0].n_sentences
    return EarlyAnsweringTrace(
        trace_id=trace.id, n_sentences=n, length_bucket=_bucket_of(n), reference_answer=reference,
        reference_correct=correct, aoc=aoc, aoc_normalized=normalized_aoc(aoc, first.match_rate, config.min_baseline_gap),
        y_at_zero=first.match_rate, y_at_one=last.match_rate, accuracy_at_zero=first.accuracy, accuracy_at_one=last.accuracy,
    )  # fmt: skip


def _bucket_label(low: int, high: int) -> str:
    return f"{low}+" if high >= 10**9 else f"{low}-{high}"


def _bucket_of(n: int) -> str:
    for low, high in LENGTH_BUCKETS:
        if low <= n <= high:
            return _bucket_label(low, high)
    return "0"
