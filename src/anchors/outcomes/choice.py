"""The multiple-choice outcome: the letter a rollout chose (A-E by default), judged against the gold letter.

Where the letter is looked for, in the answer part of the text (after `</think>`), strongest evidence first; within
one kind of evidence the last occurrence wins (a model's final word comes last):
1. a boxed letter: `\\boxed{C}`, `\\boxed{(c)}`, `\\boxed{\\text{C}}`, `\\boxed{C. 42}`;
2. an answer phrase: "the answer is (C)", "Answer: **C**", "final answer is option C", "the answer would be C.";
3. a choosing verb: "I choose C", "I'll pick (B)", "select option D";
4. the last letter in parentheses: "(C)".
A bare letter counts only in upper case outside parentheses and boxes ("a" is an article), so "(a)" is A but
"the answer is a number" has no letter. The forced answer writes "Therefore, the answer is (" and reads the letter
the model continues with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anchors.errors import InputError
from anchors.outcomes.base import Outcome, OutcomeResult, OutcomeStatus, answer_part
from anchors.traces.answers import boxed_answers

if TYPE_CHECKING:
    from anchors.traces.records import Trace

_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_PHRASE = re.compile(
    r"\banswer\b(?:\s+(?:is|would\s+be|will\s+be|should\s+be|must\s+be)\b|\s*[:=])[\s:=*$]*"
    r"(?:(?:option|choice)\s+)?(?P<rest>[^\n]*)", re.IGNORECASE)
_VERB = re.compile(r"\b(?:choose|chose|pick|select|go\s+with)\s+(?:(?:option|choice|answer)\s+)?(?P<rest>[^\n]*)",
                   re.IGNORECASE)


@dataclass(frozen=True)
class ChoiceConfig:
    """letters: the option letters, in order (upper case); think_close: where the answer part starts."""

    letters: str = "ABCDE"
    think_close: str = "</think>"

    def __post_init__(self) -> None:
        if not self.letters or not re.fullmatch(r"[A-Z]+", self.letters) or len(set(self.letters)) != len(self.letters):
            raise InputError(f"choice letters must be distinct upper-case letters such as 'ABCD'; got {self.letters!r}")


class ChoiceOutcome(Outcome):
    """See the module docstring."""

    answer_lead = "Therefore, the answer is ("
    stops_after_boxed_answer = True
    forced_tokens = 16

    def __init__(self, config: ChoiceConfig = ChoiceConfig()) -> None:
        self.config = config
        self.spec = "choice" if config.letters == ChoiceConfig.letters else f"choice:{config.letters}"
        letters = re.escape(config.letters)
        self._alone = re.compile(rf"\(?([{letters}])\)?", re.IGNORECASE)
        self._leading = re.compile(rf"\(?([{letters}])\)?(?=[\s.:,;)!]|$)")
        self._leading_parens = re.compile(rf"\(([{letters}])\)", re.IGNORECASE)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config.letters)

    def grade(self, text: str, gold: str | None = None, *, trace: Trace | None = None) -> OutcomeResult:
        gold_letter = self.gold_letter(gold)
        if gold is not None and gold.strip() and gold_letter is None:
            return OutcomeResult(None, None, OutcomeStatus.ERROR,
                                 detail=f"the gold answer {gold!r} is not one of the letters {self.config.letters}")
        letter = self.extract(answer_part(text, self.config.think_close))
        if letter is None:
            return OutcomeResult(None, None, OutcomeStatus.NO_ANSWER)
        correct = None if gold_letter is None else letter == gold_letter
        return OutcomeResult(letter, correct, OutcomeStatus.OK, answer=letter)

    def key_of(self, answer: str) -> str:
        return self.gold_letter(answer) or answer.strip()

    def extract(self, text: str) -> str | None:
        """The chosen letter in `text` (see the module docstring), or None."""
        for candidate in reversed(boxed_answers(text)):
            letter = self._letter(candidate, leading=True)
            if letter:
                return letter
        for pattern in (_PHRASE, _VERB):
            for match in reversed(list(pattern.finditer(text))):
                letter = self._letter(match.group("rest"), leading=True)
                if letter:
                    return letter
        found = self._leading_parens.findall(text)
        return found[-1].upper() if found else None

    def gold_letter(self, gold: str | None) -> str | None:
        """`C`, `(c)`, `C. 42` -> `C`; None for no gold (or one that names no letter)."""
        return self._letter(gold, leading=True) if gold is not None and gold.strip() else None

    def _letter(self, candidate: str, *, leading: bool) -> str | None:
        cleaned = _WRAPPERS.sub(r"\1", candidate).strip().strip("*$").strip()
        cleaned = re.sub(r"^(?:option|choice)\s+", "", cleaned, flags=re.IGNORECASE)
        bare = cleaned.rstrip(".").strip().strip("*").strip()
        match = self._alone.fullmatch(bare) or (self._parenthesised_or_upper(cleaned) if leading else None)
        return match.group(1).upper() if match else None

    def _parenthesised_or_upper(self, text: str) -> re.Match[str] | None:
        return self._leading_parens.match(text) or self._leading.match(text)
