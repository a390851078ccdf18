"""Features of a sentence in its trace for the offline classifier: text, position and cue phrases.

Text goes to TF-IDF (word and character n-grams, built in `offline.py`) after `normalise_text`; everything
else is a small dense vector per sentence (`dense_features`): where the sentence sits in its trace, its shape
(length, digits, maths symbols, opening word), and which tags' cue phrases it and its neighbours contain,
including a decaying memory of recent cues (a sentence after "let me double-check" is likely still checking).
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


def normalise_text(text: str) -> str:
    """Lower case, every digit run replaced by '0', whitespace collapsed: numbers differ, their role does not."""
    return _SPACES.sub(" ", _DIGITS.sub("0", text.lower())).strip()


def feature_names(taxonomy: Taxonomy) -> list[str]:
    cues = [f"cue_{where}_{tag}" for where in ("here", "previous", "next", "recent") for tag in taxonomy.names]
    return [*(f"position_{p}" for p in POSITION_FEATURES), *(f"shape_{s}" for s in SHAPE_FEATURES),
            *(f"opener_{name}" for name, _ in OPENERS), *cues]


def dense_features(texts: Sequence[str], taxonomy: Taxonomy) -> Float[np.ndarray, "sent feature"]:
    """One row per sentence of ONE trace, in order; columns as `feature_names(taxonomy)`."""
    lowered = [normalise_text(t) for t in texts]
    cues = np.array([[_has_cue(text, tag.cues) for tag in taxonomy.tags] for text in lowered], dtype=float)
    cues = cues.reshape(len(texts), len(taxonomy.tags))
    blocks = [
        _position(len(texts)),
        np.array([_shape(raw) for raw in texts], dtype=float).reshape(len(texts), len(SHAPE_FEATURES)),
        np.array([[float(text.startswith(words)) for _, words in OPENERS] for text in lowered]).reshape(len(texts), len(OPENERS)),
        cues, _shifted(cues, 1), _shifted(cues, -1), _recent(cues),
    ]
    return np.hstack(blocks)


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


def _shifted(values: np.ndarray, offset: int) -> np.ndarray:
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
