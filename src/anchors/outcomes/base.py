"""The `Outcome` interface: what a rollout's answer *is*, as a discrete key, and whether it is the target one.

Every black-box metric counts outcome keys (KL over their distribution) and verdicts (accuracy = share of
rollouts whose key is the gold/target one), so any behaviour with discrete classes can be scored once an
`Outcome` turns text into a key. An outcome also says how to *force* an answer (the text appended after the
thinking prefix) and how to read the completion that follows.

Which part of a text an outcome reads: the math outcome reads the whole text, as `anchors.traces.answers.grade`
always has. The others read the *answer part*: the text after the last closing tag (`</think>`) when there is
one, else the whole text (a trace's `answer_text` or a forced completion has no closing tag in it).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from anchors.models.templates import THINK_CLOSE

if TYPE_CHECKING:
    from anchors.models.templates import PromptTemplate
    from anchors.traces.records import Trace

# What the non-math outcomes write after the closed thinking to ask for the answer in words.
WORDS_LEAD = "Therefore, in a few words, my final answer is:"


class OutcomeStatus(str, Enum):
    """How reading one rollout ended.

    ok: a key was found (and judged against the gold, when there is one). no_answer: the text holds no answer.
    timeout / error: the check could not finish (a hung or failing grader, an unusable judge reply). The math
    outcome keeps the key when only its comparison with the gold failed (today's grading does the same).
    """

    OK = "ok"
    NO_ANSWER = "no_answer"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class OutcomeResult:
    """One rollout, read.

    key: the outcome class (an answer's normalised form, a letter, a class name); None when none was found.
    correct: whether `key` is the gold / target outcome; None without a gold or when it could not be decided.
    status: see `OutcomeStatus`. answer: the raw answer found (the extracted string, the matched text), if any.
    detail: why, in words, when status is not ok (or how a reply was repaired); '' otherwise.
    """

    key: str | None
    correct: bool | None
    status: OutcomeStatus
    answer: str | None = None
    detail: str = ""


class Outcome(ABC):
    """Reads rollouts as discrete outcomes. Subclasses take one frozen config dataclass."""

    #: The spec string that builds this outcome (`math`, `choice`, `regex:FILE`, ...), for results metadata.
    spec: str
    #: Written after the closed thinking to force an answer (the math outcome uses the template's own).
    answer_lead: str = WORDS_LEAD
    #: Whether only the answer part (after the closing tag) is read: a rollout whose thinking never closed then
    #: has no answer yet, whatever its text holds, and is closed before it is read. The math outcome reads the
    #: whole text (as anchors always has), so only a rollout without a boxed answer is closed.
    reads_answer_part: bool = True
    #: Whether sampling may stop right after the first boxed answer that follows the closing tag (the answer is
    #: known then). Off for outcomes that read free text (an email, code) which may go on after a box.
    stops_after_boxed_answer: bool = False
    #: Tokens a forced answer is given by default: a letter or a number needs few, words and code more.
    forced_tokens: int = 48

    @property
    def classes(self) -> tuple[str, ...] | None:
        """Every key this outcome can return, in order; None when open-ended (math answers)."""
        return None

    @abstractmethod
    def grade(self, text: str, gold: str | None = None, *, trace: Trace | None = None) -> OutcomeResult:
        """Read a rollout's text (or a trace's answer text); `gold` is the target key, `trace` gives context."""

    def forced_suffix(self, template: PromptTemplate) -> str:
        """What follows a thinking prefix to force an answer: the template's close, then `answer_lead`."""
        return closing_part(template) + self.answer_lead

    def grade_forced(self, completion: str, gold: str | None = None, *, prompt: str = "",
                     trace: Trace | None = None) -> OutcomeResult:
        """Read a forced answer: `completion` continues `prompt`, which ends with `forced_suffix(...)`."""
        return self.grade(self.answer_lead + completion, gold, trace=trace)

    def check(self) -> None:
        """Raise `InputError` now if this outcome cannot work (a missing module, no endpoint), before a run."""

    def closing_stem(self) -> str:
        """What follows the closing tag when anchors closes an unfinished rollout to make it answer; the
        completion sampled after it is read with `grade_forced`."""
        return "\n\n" + self.answer_lead

    def reference(self, trace: Trace) -> OutcomeResult:
        """The trace's own final answer, read from its answer text (what the trace-level tests match against)."""
        return self.grade(trace.answer_text, trace.gold_answer, trace=trace)

    def key_of(self, answer: str) -> str:
        """The key this outcome gives an answer written out (a cue's "(A)", a class name as the gold names it)."""
        wanted = class_token(answer)
        return next((c for c in self.classes or () if class_token(c) == wanted), answer.strip())

    def agrees(self, result: OutcomeResult, reference: str | None) -> bool | None:
        """Whether a read rollout gives the `reference` answer: key equality; None when either has none."""
        if reference is None or result.key is None:
            return None
        return result.key == reference


def closing_part(template: PromptTemplate) -> str:
    """The part of the template's forced-answer suffix that closes the thinking, through the blank after the tag.

    "\\n</think>\\n\\nTherefore, the final answer is \\boxed{" gives "\\n</think>\\n\\n": a template that closes
    its reasoning differently keeps its own way of doing it.
    """
    suffix, close = template.forced_answer_suffix, template.think_close
    at = suffix.find(close)
    if at < 0:
        return f"\n{close}\n\n"
    end = at + len(close)
    while end < len(suffix) and suffix[end].isspace():
        end += 1
    return suffix[:end]


def answer_part(text: str, think_close: str = THINK_CLOSE) -> str:
    """The text after the last `think_close`, or the whole text when it has none (see the module docstring)."""
    at = text.rfind(think_close)
    return text if at < 0 else text[at + len(think_close):]


def trace_context(trace: Trace | None) -> dict[str, Any]:
    """What a grader may know about the trace a rollout came from (JSON-safe)."""
    if trace is None:
        return {"trace_id": None, "problem": None, "metadata": {}}
    return {"trace_id": trace.id, "problem": trace.problem, "metadata": dict(trace.metadata)}


def class_token(raw: object) -> str:
    """A class name as compared: lower case, runs of anything but letters and digits as one `_`."""
    return re.sub(r"[^a-z0-9]+", "_", str(raw).lower()).strip("_")
