"""The math-answer outcome: exactly `anchors.traces.answers.grade`, today's behaviour and the default.

paper mode: the first boxed answer, the authors' normalisation as the key; forced answers use the published
suffix (typo included) and are read from prompt + completion, as published. default mode: the last boxed
answer, math-verify equivalence; forced answers use the template's suffix and are read from the box it opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from anchors.errors import InputError
from anchors.models.templates import PAPER_FORCED_ANSWER_SUFFIX
from anchors.outcomes.base import Outcome, OutcomeResult, OutcomeStatus
from anchors.rollouts.generate import ANSWER_STEM
from anchors.traces.answers import MODES, Grade, GradeStatus, answer_key, answers_equal, extract_answer, grade

if TYPE_CHECKING:
    from anchors.models.templates import PromptTemplate
    from anchors.traces.records import Trace

BOX_OPEN = "\\boxed{"

# A comparison that could not parse its inputs is an error of the check, not of the rollout: the key stays.
_STATUS = {GradeStatus.OK: OutcomeStatus.OK, GradeStatus.NO_ANSWER: OutcomeStatus.NO_ANSWER,
           GradeStatus.TIMEOUT: OutcomeStatus.TIMEOUT, GradeStatus.PARSE_ERROR: OutcomeStatus.ERROR}
_DETAIL = {GradeStatus.TIMEOUT: "the symbolic comparison with the gold answer timed out",
           GradeStatus.PARSE_ERROR: "the answer or the gold answer could not be parsed for comparison"}


@dataclass(frozen=True)
class MathConfig:
    """mode: "default" or "paper"; method: the extractor of resampled rollouts (None: the mode's own, see
    `anchors.traces.answers.DEFAULT_METHOD`); timeout_s: the wall-clock limit of one symbolic comparison."""

    mode: str = "default"
    method: str | None = None
    timeout_s: float | None = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"the math outcome's mode must be one of {', '.join(MODES)}; got {self.mode!r}")


class MathOutcome(Outcome):
    """See the module docstring; `grade` returns what `answers.grade` returns, re-labelled."""

    reads_answer_part = False
    stops_after_boxed_answer = True
    forced_tokens = 16

    def __init__(self, config: MathConfig = MathConfig()) -> None:
        self.config = config
        self.spec = "math"
        # For reading only: forced_suffix uses the template's own suffix, which ends with this lead.
        self.answer_lead = "Therefore, the final answer is " + BOX_OPEN

    def grade(self, text: str, gold: str | None = None, *, trace: Trace | None = None) -> OutcomeResult:
        cfg = self.config
        return from_grade(grade(text, gold, mode=cfg.mode, method=cfg.method, timeout=cfg.timeout_s))  # type: ignore[arg-type]

    def forced_suffix(self, template: PromptTemplate) -> str:
        return PAPER_FORCED_ANSWER_SUFFIX if self.config.mode == "paper" else template.forced_answer_suffix

    def grade_forced(self, completion: str, gold: str | None = None, *, prompt: str = "",
                     trace: Trace | None = None) -> OutcomeResult:
        if self.config.mode == "paper":  # the first boxed answer of prompt + completion, as published
            return from_grade(grade(prompt + completion, gold, mode="paper", timeout=self.config.timeout_s))
        return from_grade(grade(BOX_OPEN + completion, gold, mode="default", method="boxed_first",
                                timeout=self.config.timeout_s))


    def closing_stem(self) -> str:
        return ANSWER_STEM  # "The final answer is \\boxed{" after a blank line, as `anchors generate` closes a trace

    def reference(self, trace: Trace) -> OutcomeResult:
        """The trace's final answer in any form ('auto': a box, "the answer is X", the last number), as the
        trace-level tests have always read it; `key` is the answer as written (compared by equivalence)."""
        answer = extract_answer(trace.answer_text, "auto")
        if answer is None:
            return OutcomeResult(None, None, OutcomeStatus.NO_ANSWER)
        verdict = grade(trace.answer_text, trace.gold_answer, method="auto", timeout=self.config.timeout_s).correct
        return OutcomeResult(answer, verdict, OutcomeStatus.OK, answer=answer)

    def key_of(self, answer: str) -> str:
        return answer_key(answer, self.config.mode) or answer.strip()  # type: ignore[arg-type]

    def agrees(self, result: OutcomeResult, reference: str | None) -> bool | None:
        """Math-verify equivalence of the rollout's answer with the reference (not key equality: 0.5 = 1/2)."""
        if reference is None or result.answer is None:
            return None
        verdict, status = answers_equal(result.answer, reference, mode=self.config.mode,  # type: ignore[arg-type]
                                        timeout=self.config.timeout_s)
        return verdict if status is GradeStatus.OK else None


def from_grade(result: Grade) -> OutcomeResult:
    """A `Grade` as an `OutcomeResult`: the same answer, key and verdict."""
    return OutcomeResult(key=result.key, correct=result.correct, status=_STATUS[result.status],
                         answer=result.answer, detail=_DETAIL.get(result.status, ""))
