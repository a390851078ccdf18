"""Where a continuation ends early: configured stop strings, or the closing brace of the boxed answer.

Both engines use the same rules, so a rollout's text does not depend on the backend: the text is cut right
after the earliest stop string (the stop string is kept, as in `rollouts.reference.sample`), or right after the
`}` that closes the first `\\boxed{` written after the thinking's closing tag. The prompt counts: a forced-answer
prompt that already ends in `</think> … \\boxed{` stops at the first brace that closes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anchors.models.handle import ModelHandle

BOXED = "\\boxed{"


@dataclass(frozen=True)
class StopRule:
    """The stop conditions of one prompt (apart from EOS and the token budget, which engines handle)."""

    stop: tuple[str, ...] = ()
    boxed: bool = False
    # Text already past the thinking's closing tag in the prompt, or None while the thinking is open.
    answer_prefix: str | None = None
    think_close: str = "</think>"

    @classmethod
    def for_prompt(cls, prompt_text: str, stop: Sequence[str], boxed: bool, think_open: str = "<think>",
                   think_close: str = "</think>") -> StopRule:
        close_at = prompt_text.rfind(think_close)
        closed = close_at >= 0 and close_at > prompt_text.rfind(think_open)
        answer_prefix = prompt_text[close_at + len(think_close):] if closed else None
        return cls(tuple(s for s in stop if s), boxed, answer_prefix, think_close)

    @property
    def active(self) -> bool:
        return bool(self.stop) or self.boxed

    def trigger_chars(self) -> frozenset[str]:
        """Characters one of which the last token must contain for a rule to fire at that token."""
        chars = {s[-1] for s in self.stop}
        return frozenset(chars | {"}"}) if self.boxed else frozenset(chars)

    def end(self, generated: str) -> int | None:
        """Offset in `generated` right after the earliest stop (string or boxed answer), or None."""
        ends = [e for e in (first_stop_end(generated, self.stop), self._boxed_end(generated)) if e is not None]
        return min(ends) if ends else None

    def _boxed_end(self, generated: str) -> int | None:
        if not self.boxed:
            return None
        if self.answer_prefix is not None:
            region, offset = self.answer_prefix + generated, -len(self.answer_prefix)
        else:
            close_at = generated.find(self.think_close)
            if close_at < 0:
                return None
            start = close_at + len(self.think_close)
            region, offset = generated[start:], start
        end = first_boxed_end(region, after=-offset if offset < 0 else 0)
        return None if end is None else end + offset


def first_stop_end(text: str, stops: Sequence[str]) -> int | None:
    """End offset of the earliest stop string in `text` (ties: the longer one), or None."""
    found = [(text.find(s), -len(s)) for s in stops if s and s in text]
    if not found:
        return None
    start, negative_length = min(found)
    return start - negative_length


def first_boxed_end(text: str, after: int = 0) -> int | None:
    """Offset right after the brace closing the first `\\boxed{` of `text` that closes past `after`."""
    search = 0
    while (start := text.find(BOXED, search)) >= 0:
        depth, position = 1, start + len(BOXED)
        while position < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            position += 1
        if depth:
            return None  # still open: the answer is being written
        if position > after:
            return position
        search = position
    return None


def tokens_covering(handle: ModelHandle, ids: Sequence[int], wanted: str) -> int:
    """Fewest leading tokens whose decoding starts with `wanted` (binary search: decodings grow); 0 for ''."""
    ids = list(ids)
    low, high = 0, len(ids)
    while low < high:
        middle = (low + high) // 2
        if handle.decode(ids[:middle]).startswith(wanted):
            high = middle
        else:
            low = middle + 1
    return high
