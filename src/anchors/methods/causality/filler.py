"""Filler and swapped traces: does the *content* of the thinking matter, or only that there is some?

For each trace, the answer is forced (`samples` times) after four thinkings:

* `real`: the trace's own thinking;
* `none`: an empty thinking (the model answers at once);
* `filler`: the thinking replaced by filler (" ..." repeated) of the same length in model tokens
  (Lanham et al.'s filler tokens; without a tokenizer, the same length in characters);
* `swapped`: the thinking of a different problem's trace ("Beyond Semantics": a trace for another problem),
  taken from the same input file by a seeded derangement; needs at least two traces with different problems.

Accuracy is measured against the gold answer and the match rate against the trace's own answer. If `filler`
or `swapped` do about as well as `real`, the answer does not depend on what the trace says.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from anchors.methods.causality.tables import Row, RowsResult
from anchors.methods.causality.sampling import TraceSampler, answer_rates, forced_answers, stable_seed
from anchors.metrics.curves import mean_and_se
from anchors.traces.records import Trace
from anchors.types import Progress

CONDITIONS = ("real", "none", "filler", "swapped")


@dataclass(frozen=True)
class FillerConfig:
    samples: int = 4
    answer_tokens: int = 16
    filler_unit: str = " ..."
    conditions: tuple[str, ...] = CONDITIONS
    seed: int = 0


class FillerRow(Row):
    trace_id: str
    condition: str  # real / none / filler / swapped
    source_trace_id: str | None  # whose thinking was used (swapped: the other trace)
    thinking_tokens: int | None  # length of the thinking used, in model tokens (None without a tokenizer)
    n_samples: int
    n_answered: int
    accuracy: float
    match_rate: float
    answers: list[str | None]


class FillerResult(RowsResult[FillerRow, FillerConfig]):
    """One row per (trace, condition)."""

    row_type = FillerRow

    def summary(self) -> pd.DataFrame:
        """Per condition: mean ± SE over traces of accuracy and match rate, and the accuracy minus `real`'s."""
        real = {r.trace_id: r.accuracy for r in self.rows if r.condition == "real"}
        out = []
        for condition in self.config.conditions:
            rows = [r for r in self.rows if r.condition == condition]
            if not rows:
                continue
            accuracy, match = mean_and_se([r.accuracy for r in rows]), mean_and_se([r.match_rate for r in rows])
            drop = mean_and_se([r.accuracy - real.get(r.trace_id, float("nan")) for r in rows])
            out.append({"condition": condition, "n_traces": len(rows), "accuracy_mean": accuracy[0], "accuracy_se": accuracy[1],
                        "match_rate_mean": match[0], "match_rate_se": match[1], "accuracy_minus_real_mean": drop[0]})
        return pd.DataFrame(out)


def filler_tests(
    sampler: TraceSampler, traces: Sequence[Trace], config: FillerConfig = FillerConfig(), *,
    progress: Progress | None = None,
) -> FillerResult:
    """Force answers after the real, an empty, a filler and a swapped thinking for every trace."""
    unknown = set(config.conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"unknown filler conditions {sorted(unknown)}; choose from {', '.join(CONDITIONS)}")
    donors = swap_partners(traces, config.seed)
    rows: list[FillerRow] = []
    for trace in progress(traces, "filler and swapped traces") if progress else traces:
        rows.extend(_trace_rows(sampler, trace, donors.get(trace.id), config))
    return FillerResult(tuple(rows), config, sampler.identity)


def swap_partners(traces: Sequence[Trace], seed: int) -> dict[str, Trace]:
    """Trace id -> another trace whose problem differs (a seeded rotation of a shuffled order).

    Traces whose problem every other trace shares get no partner."""
    order = list(traces)
    random.Random(stable_seed(seed, "swap")).shuffle(order)
    partners: dict[str, Trace] = {}
    for i, trace in enumerate(order):
        for step in range(1, len(order)):
            donor = order[(i + step) % len(order)]
            if donor.problem.strip() != trace.problem.strip():
                partners[trace.id] = donor
                break
    return partners


def filler_text(unit: str, target_tokens: int | None, target_chars: int, count_tokens: Callable[[str], int] | None) -> str:
    """`unit` repeated to `target_tokens` model tokens (the fewest repeats reaching it), or to the same
    number of characters when no tokenizer is known."""
    if count_tokens is None or target_tokens is None:
        return (unit * (target_chars // max(len(unit), 1) + 1))[:target_chars]
    low, high = 0, max(1, target_tokens)
    while count_tokens(unit * high) < target_tokens:
        high *= 2
    while low < high:  # fewest repeats with at least target_tokens tokens
        middle = (low + high) // 2
        if count_tokens(unit * middle) >= target_tokens:
            high = middle
        else:
            low = middle + 1
    return unit * low


def _thinkings(sampler: TraceSampler, trace: Trace, donor: Trace | None, config: FillerConfig) -> dict[str, tuple[str, str | None]]:
    tokens = sampler.count_tokens(trace.thinking) if sampler.count_tokens else None
    options: dict[str, tuple[str, str | None]] = {
        "real": (trace.thinking, trace.id), "none": ("", None),
        "filler": (filler_text(config.filler_unit, tokens, len(trace.thinking), sampler.count_tokens), None),
    }  # fmt: skip
    if donor is not None:
        options["swapped"] = (donor.thinking, donor.id)
    return {c: options[c] for c in config.conditions if c in options}


def _trace_rows(sampler: TraceSampler, trace: Trace, donor: Trace | None, config: FillerConfig) -> list[FillerRow]:
    thinkings = _thinkings(sampler, trace, donor, config)
    answers = forced_answers(sampler, trace, {c: text for c, (text, _) in thinkings.items()}, n=config.samples,
                             seed=config.seed, answer_tokens=config.answer_tokens)
    rows = []
    for condition, (text, source) in thinkings.items():
        samples = answers[condition]
        length: Any = sampler.count_tokens(text) if sampler.count_tokens else None
        rows.append(FillerRow(trace_id=trace.id, condition=condition, source_trace_id=source, thinking_tokens=length,
                              answers=[s.key for s in samples], **answer_rates(samples)))
    return rows
