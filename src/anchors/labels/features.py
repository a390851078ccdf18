"""Features of a sentence in its trace for the offline classifier: text, position and cue phrases.

Text goes to TF-IDF (word and character n-grams, built in `offline.py`) after `normalise_text`; everything
else is a small dense vector per sentence (`dense_features`): where the sentence sits in its trace, its shape
(length, digits, maths symbols, opening word), which tags' cue phrases it and its neighbours contain,
including a decaying memory of recent cues (a sentence after "let me double-check" is likely still checking),
and what is new in it (`novelty`): numbers and words quoted from the problem point to setup or a recalled
problem detail, new numbers to computation, numbers seen earlier in the trace to consolidation or checking.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from anchors.traces.taxonomy import Taxonomy

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_MATH_CHARS = set("=+-*/^\\(){}[]<>≈×÷·√π∑∫|")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CONTENT_WORD = re.compile(r"[a-z]{3,}")
# Words too common to say anything about where a sentence's content comes from.
_FUNCTION_WORDS = frozenset("the and that this with for are was from have then there which what when will would can "
                            "let not but its has had were been into than also our you your they them".split())
# How fast the memory of a cue fades, per sentence (0.6 ** 3 ≈ 0.2 after three sentences).
CUE_MEMORY_DECAY = 0.6
OPENERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wait", ("wait",)),
    ("hmm", ("hmm", "hm,", "huh")),
    ("so", ("so ", "so,")),
    ("but", ("but ",)),
    ("therefore", ("therefore", "thus", "hence")),
    ("let", ("let me", "let's", "let us")),
    ("sequence", ("now", "next", "first", "then", "second", "finally")),
    ("alternative", ("alternatively", "another way", "or maybe", "maybe")),
    ("affirm", ("yes", "yep", "correct", "right", "good", "ok", "okay", "alright", "great")),
    ("final", ("**final", "final answer")),
)
SHAPE_FEATURES = ("length", "words", "digit_fraction", "math_fraction", "has_equals", "ends_question",
                  "ends_colon", "has_boxed", "is_short")
# Distances from the start and the end in sentences, not fractions of the trace: traces differ tenfold in
# length, and a fraction learnt on short traces misplaces every sentence of a long one.
POSITION_FEATURES = ("first", "second", "third", "last", "second_last", "from_start", "from_end")
NOVELTY_FEATURES = ("numbers_from_problem", "numbers_from_trace", "numbers_new", "no_numbers", "number_count",
                    "words_from_problem", "words_from_trace", "words_new")


def normalise_text(text: str) -> str:
    """Lower case, every digit run replaced by '0', whitespace collapsed: numbers differ, their role does not."""
    return _SPACES.sub(" ", _DIGITS.sub("0", text.lower())).strip()


def feature_names(taxonomy: Taxonomy) -> list[str]:
    cues = [f"cue_{where}_{tag}" for where in ("here", "previous", "next", "recent") for tag in taxonomy.names]
    return [*(f"position_{p}" for p in POSITION_FEATURES), *(f"shape_{s}" for s in SHAPE_FEATURES),
            *(f"opener_{name}" for name, _ in OPENERS), *cues, *(f"novelty_{n}" for n in NOVELTY_FEATURES)]


def dense_features(texts: Sequence[str], taxonomy: Taxonomy, problem: str | None = None) -> Float[np.ndarray, "sent feature"]:
    """One row per sentence of ONE trace, in order; columns as `feature_names(taxonomy)`.

    `problem`: the problem statement, if known (without it nothing counts as quoted from the problem).
    """
    lowered = [normalise_text(t) for t in texts]
    cues = np.array([[_has_cue(text, tag.cues) for tag in taxonomy.tags] for text in lowered], dtype=float)
    cues = cues.reshape(len(texts), len(taxonomy.tags))
    blocks = [
        _position(len(texts)),
        np.array([_shape(raw) for raw in texts], dtype=float).reshape(len(texts), len(SHAPE_FEATURES)),
        np.array([[float(text.startswith(words)) for _, words in OPENERS] for text in lowered]).reshape(len(texts), len(OPENERS)),
        cues, shifted(cues, 1), shifted(cues, -1), _recent(cues), novelty(texts, problem),
    ]
    return np.hstack(blocks)


def novelty(texts: Sequence[str], problem: str | None) -> Float[np.ndarray, "sent feature"]:
    """Where each sentence's numbers and content words come from: the problem, earlier sentences, or nowhere yet.

    Columns as NOVELTY_FEATURES: shares of the sentence's distinct numbers found in the problem, found only in
    earlier sentences, and new; whether it has no number; how many numbers (log); the same three shares for
    content words (3+ letters, common function words left out).
    """
    problem_text = (problem or "").lower()
    problem_numbers, problem_words = set(_NUMBER.findall(problem_text)), _content_words(problem_text)
    seen_numbers: set[str] = set()
    seen_words: set[str] = set()
    rows = np.zeros((len(texts), len(NOVELTY_FEATURES)))
    for i, text in enumerate(texts):
        lowered = text.lower()
        numbers, words = set(_NUMBER.findall(lowered)), _content_words(lowered)
        rows[i, :3] = _shares(numbers, problem_numbers, seen_numbers)
        rows[i, 3:5] = float(not numbers), math.log1p(len(numbers)) / 3.0
        rows[i, 5:] = _shares(words, problem_words, seen_words)
        seen_numbers |= numbers
        seen_words |= words
    return rows


def _content_words(text: str) -> set[str]:
    return set(_CONTENT_WORD.findall(text)) - _FUNCTION_WORDS


def _shares(items: set[str], in_problem: set[str], seen: set[str]) -> tuple[float, float, float]:
    """Shares of `items` quoted from the problem, seen only earlier in the trace, and new (all 0 when empty)."""
    if not items:
        return 0.0, 0.0, 0.0
    count = len(items)
    from_problem = items & in_problem
    from_trace = (items & seen) - from_problem
    return len(from_problem) / count, len(from_trace) / count, (count - len(from_problem) - len(from_trace)) / count


def _has_cue(text: str, cues: tuple[str, ...]) -> float:
    return float(any(cue in text for cue in cues))


def _position(n: int) -> np.ndarray:
    index = np.arange(n, dtype=float)
    to_end = n - 1 - index
    columns = [index == 0, index == 1, index == 2, to_end == 0, to_end == 1, np.log1p(index) / 5, np.log1p(to_end) / 5]
    return np.stack([np.asarray(c, dtype=float) for c in columns], axis=1)


def _shape(text: str) -> list[float]:
    stripped = text.strip()
    chars = max(len(stripped), 1)
    return [
        math.log1p(len(stripped)) / 6.0,
        math.log1p(len(stripped.split())) / 4.0,
        sum(c.isdigit() for c in stripped) / chars,
        sum(c in _MATH_CHARS for c in stripped) / chars,
        float("=" in stripped or "≈" in stripped),
        float(stripped.endswith("?")),
        float(stripped.endswith(":")),
        float("\\boxed" in stripped),
        float(len(stripped.split()) <= 3),
    ]


def shifted(values: np.ndarray, offset: int) -> np.ndarray:
    """Row i gets row i - offset (the previous sentence for +1, the next for -1); zeros past the ends."""
    out = np.zeros_like(values)
    if offset > 0:
        out[offset:] = values[:-offset]
    elif offset < 0:
        out[:offset] = values[-offset:]
    return out


def _recent(values: np.ndarray) -> np.ndarray:
    """Decaying memory of cues in the sentences before each one (not counting itself)."""
    out = np.zeros_like(values)
    memory = np.zeros(values.shape[1])
    for i, row in enumerate(values):
        out[i] = memory
        memory = np.maximum(memory * CUE_MEMORY_DECAY, row)
    return out
