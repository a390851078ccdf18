"""Step validity: are the trace's own arithmetic steps right, and does that relate to a correct answer?

Every sentence of the thinking is checked by `anchors.arithmetic.claims.check_sentence` (claims such as "3 × 13 = 39",
"48 divided by 2 is 24", "\\frac{48}{2} = 24", checked exactly with sympy): a sentence is `valid`, `invalid`
or `no_claim`. A trace is `invalid` if any checked claim is wrong, `valid` if it has at least one checked
claim and none is wrong, and `no_claim` otherwise ("Beyond Semantics": formally validate each step).

The contingency table crosses trace validity with answer correctness; the number to look at is how many
correct answers were reached through invalid traces. Correctness comes from the trace's recorded verdict
(`metadata["is_correct"]`, as in the Thought Anchors release) when present (`correctness="auto"`), else from
grading `answer_text` against `gold_answer`.

"Invalid" is literal: a claim false as written counts even if the model corrects it a sentence later, and
sloppy chains such as "3182 − 319 + 1 = 3182 − 319 = 2863" are invalid (except the running-total idiom
"2 · 3 = 6 + 1 = 7", accepted). No model is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal


from anchors.arithmetic.claims import check_sentence
from anchors.methods.causality.tables import Row, table
from anchors.traces.answers import grade
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences
from anchors.types import Progress

VALIDITY = ("valid", "invalid", "no_claim")
CORRECTNESS = ("correct", "incorrect", "ungraded")


@dataclass(frozen=True)
class StepValidityConfig:
    mode: str = "default"  # sentence segmentation
    correctness: Literal["auto", "recorded", "graded"] = "auto"
    grade_timeout: float = 5.0


class ClaimRow(Row):
    trace_id: str
    sentence_index: int
    claim: str
    lhs: str
    rhs: str
    relation: str
    verdict: str  # valid / invalid / unchecked
    reason: str
    lhs_value: str | None
    rhs_value: str | None


class SentenceValidity(Row):
    trace_id: str
    sentence_index: int
    text: str
    label: str  # valid / invalid / no_claim
    n_claims: int
    n_valid: int
    n_invalid: int
    n_unchecked: int


class TraceValidity(Row):
    trace_id: str
    n_sentences: int
    n_claims: int
    n_valid_claims: int
    n_invalid_claims: int
    n_unchecked_claims: int
    n_invalid_sentences: int
    first_invalid_sentence: int | None
    validity: str  # valid / invalid / no_claim
    correct: bool | None
    correct_source: str  # recorded / graded / none


class ContingencyRow(Row):
    validity: str
    correct: int
    incorrect: int
    ungraded: int
    total: int
    accuracy: float  # correct / (correct + incorrect)


@dataclass(frozen=True)
class StepValidityResult:
    claims: tuple[ClaimRow, ...]
    sentences: tuple[SentenceValidity, ...]
    traces: tuple[TraceValidity, ...]
    config: StepValidityConfig

    to_pandas = table("traces", TraceValidity, "One row per trace.")
    sentences_frame = table("sentences", SentenceValidity)
    claims_frame = table("claims", ClaimRow)

    def contingency(self) -> tuple[ContingencyRow, ...]:
        """Trace validity (rows) × answer correctness (columns), counts and accuracy per row."""
        rows = []
        for validity in (*VALIDITY, "all"):
            chosen = [t for t in self.traces if validity in ("all", t.validity)]
            counts = {c: sum(_correctness(t) == c for t in chosen) for c in CORRECTNESS}
            graded = counts["correct"] + counts["incorrect"]
            rows.append(ContingencyRow(validity=validity, **counts, total=len(chosen),
                                       accuracy=counts["correct"] / graded if graded else float("nan")))
        return tuple(rows)

    def summary(self) -> dict[str, Any]:
        """The headline numbers: correct answers reached through invalid traces, and rates."""
        table = {row.validity: row for row in self.contingency()}
        correct_checked = table["valid"].correct + table["invalid"].correct
        invalid_graded = table["invalid"].correct + table["invalid"].incorrect
        return {
            "n_traces": len(self.traces),
            "correct_through_invalid": table["invalid"].correct,
            "share_of_correct_with_invalid_trace": _ratio(table["invalid"].correct, correct_checked),
            "share_of_invalid_traces_with_correct_answer": _ratio(table["invalid"].correct, invalid_graded),
            "accuracy_valid_traces": table["valid"].accuracy,
            "accuracy_invalid_traces": table["invalid"].accuracy,
            "n_claims": len(self.claims),
            "n_invalid_claims": sum(c.verdict == "invalid" for c in self.claims),
            "n_unchecked_claims": sum(c.verdict == "unchecked" for c in self.claims),
        }  # fmt: skip


def step_validity(
    traces: Sequence[Trace], config: StepValidityConfig = StepValidityConfig(), *, progress: Progress | None = None
) -> StepValidityResult:
    """Check every arithmetic claim of every trace and cross trace validity with answer correctness."""
    claims: list[ClaimRow] = []
    sentences: list[SentenceValidity] = []
    summaries: list[TraceValidity] = []
    for trace in progress(traces, "checking steps") if progress else traces:
        trace_claims, trace_sentences = _check_trace(trace, config.mode)
        claims.extend(trace_claims)
        sentences.extend(trace_sentences)
        summaries.append(_trace_validity(trace, trace_claims, trace_sentences, config))
    return StepValidityResult(tuple(claims), tuple(sentences), tuple(summaries), config)


def _check_trace(trace: Trace, mode: str) -> tuple[list[ClaimRow], list[SentenceValidity]]:
    claims, sentences = [], []
    for sentence in split_sentences(trace.thinking, mode=mode):  # type: ignore[arg-type]
        check = check_sentence(sentence.text)
        sentences.append(SentenceValidity(
            trace_id=trace.id, sentence_index=sentence.index, text=sentence.text, label=check.label,
            n_claims=len(check.claims), n_valid=check.n_valid, n_invalid=check.n_invalid, n_unchecked=check.n_unchecked,
        ))  # fmt: skip
        claims.extend(ClaimRow(
            trace_id=trace.id, sentence_index=sentence.index, claim=c.text, lhs=c.lhs, rhs=c.rhs, relation=c.relation,
            verdict=c.verdict, reason=c.reason, lhs_value=c.lhs_value, rhs_value=c.rhs_value,
        ) for c in check.claims)  # fmt: skip
    return claims, sentences


def _trace_validity(trace: Trace, claims: list[ClaimRow], sentences: list[SentenceValidity], config: StepValidityConfig) -> TraceValidity:
    invalid = [s.sentence_index for s in sentences if s.label == "invalid"]
    n_valid = sum(c.verdict == "valid" for c in claims)
    validity = "invalid" if invalid else ("valid" if n_valid else "no_claim")
    correct, source = answer_correctness(trace, config.correctness, config.grade_timeout)
    return TraceValidity(
        trace_id=trace.id, n_sentences=len(sentences), n_claims=len(claims), n_valid_claims=n_valid,
        n_invalid_claims=sum(c.verdict == "invalid" for c in claims),
        n_unchecked_claims=sum(c.verdict == "unchecked" for c in claims), n_invalid_sentences=len(invalid),
        first_invalid_sentence=invalid[0] if invalid else None, validity=validity, correct=correct, correct_source=source,
    )  # fmt: skip


def answer_correctness(trace: Trace, how: str, timeout: float = 5.0) -> tuple[bool | None, str]:
    """(correct, where the verdict came from): the recorded `metadata['is_correct']` or a fresh grade."""
    recorded = trace.metadata.get("is_correct")
    if how in ("auto", "recorded") and isinstance(recorded, bool):
        return recorded, "recorded"
    if how == "recorded" or trace.gold_answer is None:
        return None, "none"
    verdict = grade(trace.answer_text, trace.gold_answer, method="auto", timeout=timeout).correct
    return verdict, "graded" if verdict is not None else "none"


def _correctness(trace: TraceValidity) -> str:
    return "ungraded" if trace.correct is None else ("correct" if trace.correct else "incorrect")


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")
