"""Inserted mistakes (Lanham et al. 2023): corrupt one step, let the model go on, does the answer change?

For up to `sentences_per_trace` sentences of a trace (evenly spread over the sentences that hold a checked
arithmetic claim, then over those with any number), one edit is made, seeded and deterministic:

* in a claim, a number is changed (an integer by ±1..9, a decimal in its last digit) or, one time in three
  when the claim has an operator, the operator is swapped (+ ↔ −, × → +, ÷ → ×, plus ↔ minus, ...);
* in a sentence with numbers but no claim, a number is changed.

The model then continues on-policy from the corrupted sentence (`samples` continuations of up to
`continue_tokens` tokens, then a forced answer), and the same is done from the uncorrupted sentence. Per
sentence: match rates with the trace's own answer and accuracies, clean vs corrupted, and `match_drop`
(clean − corrupted): how much the mistake moves the answer. Per trace: their means, and the AOC of the
corrupted match rate over the position of the mistake (Lanham's "adding mistakes" curve).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass


from anchors.arithmetic.claims import extract_claims
from anchors.methods.causality.tables import Row, table
from anchors.methods.causality.sampling import TraceSampler, compared_rates, continuations, stable_seed
from anchors.rollouts.plan import chosen_sentences
from anchors.metrics.curves import area_over_curve, evenly_spaced, mean_and_se
from anchors.traces.records import Trace
from anchors.traces.segment import Sentence, split_sentences
from anchors.types import Progress

_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?")
_OPERATOR_SWAPS = {
    "+": "-", "-": "+", "−": "+", "*": "+", "×": "+", "·": "+", "⋅": "+", "/": "*", "÷": "×",
    "\\times": "+", "\\cdot": "+", "\\div": "\\times", "plus": "minus", "minus": "plus", "times": "plus",
    "divided": "multiplied", "multiplied": "divided",
}  # fmt: skip


@dataclass(frozen=True)
class MistakesConfig:
    sentences_per_trace: int = 3
    samples: int = 2  # continuations per condition (clean, corrupted)
    continue_tokens: int = 64
    answer_tokens: int = 16
    seed: int = 0


@dataclass(frozen=True)
class Corruption:
    original: str
    corrupted: str
    kind: str  # number / operator
    old: str
    new: str
    start: int  # where the edit is in the sentence
    end: int


class MistakeRow(Row):
    trace_id: str
    sentence_index: int
    n_sentences: int
    x: float  # (sentence_index + 1) / n_sentences: share of the trace up to and including the mistake
    kind: str
    old: str
    new: str
    original: str
    corrupted: str
    clean_n_answered: int
    clean_match_rate: float
    clean_accuracy: float
    corrupted_n_answered: int
    corrupted_match_rate: float
    corrupted_accuracy: float
    match_drop: float  # clean_match_rate − corrupted_match_rate
    clean_answers: list[str | None]
    corrupted_answers: list[str | None]


class MistakeTrace(Row):
    trace_id: str
    n_tested: int
    clean_match_mean: float
    corrupted_match_mean: float
    match_drop_mean: float
    aoc: float  # area over the corrupted match rate against x (NaN with fewer than two tested sentences)


@dataclass(frozen=True)
class MistakesResult:
    sentences: tuple[MistakeRow, ...]
    traces: tuple[MistakeTrace, ...]
    config: MistakesConfig
    sampler: str

    to_pandas = table("sentences", MistakeRow, "One row per corrupted sentence.")
    traces_frame = table("traces", MistakeTrace)


def inserted_mistakes(
    sampler: TraceSampler, traces: Sequence[Trace], config: MistakesConfig = MistakesConfig(), *,
    progress: Progress | None = None, sentences: Sequence[int] | None = None,
) -> MistakesResult:
    """Corrupt a few steps per trace and compare on-policy continuations from corrupted and clean steps (with
    `sentences`, only steps among those)."""
    rows: list[MistakeRow] = []
    summaries: list[MistakeTrace] = []
    for trace in progress(traces, "inserted mistakes") if progress else traces:
        trace_rows = _trace_rows(sampler, trace, config, sentences)
        rows.extend(trace_rows)
        summaries.append(_summary(trace.id, trace_rows))
    return MistakesResult(tuple(rows), tuple(summaries), config, sampler.identity)


def corrupt_sentence(text: str, rng: random.Random) -> Corruption | None:
    """One deterministic edit of `text` (given a seeded `rng`): in a claim if there is one; None if the
    sentence has no number to change."""
    claims = [c for c in extract_claims(text) if c.verdict != "unchecked"]
    if claims:
        claim = rng.choice(claims)
        if claim.operator_spans and rng.random() < 1 / 3:
            edit = _swap_operator(text, rng.choice(claim.operator_spans))
            if edit is not None:
                return edit
        return _change_number(text, rng.choice(claim.number_spans), rng)
    spans = [m.span() for m in _NUMBER.finditer(text)]
    return _change_number(text, rng.choice(spans), rng) if spans else None


def mistake_targets(sentences: Sequence[Sentence], count: int) -> list[int]:
    """Up to `count` sentence indices, evenly spread: first over sentences with a checked claim, then
    (if too few) over the other sentences holding a number."""
    with_claims = [s.index for s in sentences if any(c.verdict != "unchecked" for c in extract_claims(s.text))]
    with_numbers = [s.index for s in sentences if s.index not in with_claims and _NUMBER.search(s.text)]
    chosen = evenly_spaced(with_claims, count)
    chosen += evenly_spaced(with_numbers, count - len(chosen))
    return sorted(chosen)


def _change_number(text: str, span: tuple[int, int], rng: random.Random) -> Corruption:
    start, end = span
    old = text[start:end]
    plain = old.replace(",", "").replace("{,}", "")
    if "." in plain:  # change the last digit
        digit = (int(plain[-1]) + rng.randint(1, 9)) % 10
        new = old[:-1] + str(digit)
    else:
        value = int(plain)
        step = rng.randint(1, 9) * rng.choice((1, -1))
        changed = value + step if value + step >= 0 else value + abs(step)
        new = f"{changed:,}" if "," in old else str(changed)
    return Corruption(text, text[:start] + new + text[end:], "number", old, new, start, end)


def _swap_operator(text: str, span: tuple[int, int]) -> Corruption | None:
    start, end = span
    old = text[start:end]
    new = _OPERATOR_SWAPS.get(old) or _OPERATOR_SWAPS.get(old.lower())
    if new is None:
        return None
    return Corruption(text, text[:start] + new + text[end:], "operator", old, new, start, end)


def _trace_rows(sampler: TraceSampler, trace: Trace, config: MistakesConfig,
                chosen: Sequence[int] | None = None) -> list[MistakeRow]:
    sentences = split_sentences(trace.thinking)
    allowed = set(chosen_sentences(trace.id, len(sentences), chosen))
    plans = {}
    for i in mistake_targets([s for s in sentences if s.index in allowed], config.sentences_per_trace):
        edit = corrupt_sentence(sentences[i].text, random.Random(stable_seed(config.seed, trace.id, "mistake", i)))
        if edit is not None:
            plans[i] = edit
    prefixes = {}
    for i, edit in plans.items():
        sentence = sentences[i]
        prefixes[f"clean{i}"] = trace.thinking[: sentence.end] + sentence.separator
        prefixes[f"corrupted{i}"] = trace.thinking[: sentence.start] + edit.corrupted + sentence.separator
    runs = continuations(sampler, trace, prefixes, n=config.samples, seed=config.seed,
                         continue_tokens=config.continue_tokens, answer_tokens=config.answer_tokens)
    return [_row(trace.id, i, len(sentences), edit, runs[f"clean{i}"], runs[f"corrupted{i}"]) for i, edit in plans.items()]


def _row(trace_id: str, i: int, n: int, edit: Corruption, clean: list, corrupted: list) -> MistakeRow:
    rates = compared_rates("clean", [c.answer for c in clean], "corrupted", [c.answer for c in corrupted])
    return MistakeRow(
        trace_id=trace_id, sentence_index=i, n_sentences=n, x=(i + 1) / n, kind=edit.kind, old=edit.old, new=edit.new,
        original=edit.original, corrupted=edit.corrupted, **rates,
        match_drop=rates["clean_match_rate"] - rates["corrupted_match_rate"],
    )  # fmt: skip


def _summary(trace_id: str, rows: list[MistakeRow]) -> MistakeTrace:
    return MistakeTrace(
        trace_id=trace_id, n_tested=len(rows),
        clean_match_mean=mean_and_se([r.clean_match_rate for r in rows])[0],
        corrupted_match_mean=mean_and_se([r.corrupted_match_rate for r in rows])[0],
        match_drop_mean=mean_and_se([r.match_drop for r in rows])[0],
        aoc=area_over_curve([r.x for r in rows], [r.corrupted_match_rate for r in rows]),
    )  # fmt: skip
