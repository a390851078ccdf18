"""Map sentences' character spans onto token index spans, and check the mapping by decoding.

Ownership rule (one rule for every tokenizer):

* A token belongs to the sentence whose character span ``[start, end)`` contains the token's first
  non-whitespace character.  So " The" (leading space merged in) belongs to the sentence that "The" starts, and
  ".\\n\\n" (a boundary merged into one token) belongs to the sentence that ends with ".".
* Tokens with no non-whitespace character ("\\n\\n", " ", special tokens with an empty offset) belong to no
  sentence by default: a sentence's span covers its own text, not the separator after it.  With
  ``attach_whitespace=True`` each whitespace token goes to the sentence owning the token before it (so spans tile
  the thinking text, trailing line breaks included, which suits masking a whole sentence).
* Tokens outside every sentence (the prompt, the answer) belong to none.

A sentence's span is ``[first owned token, last owned token + 1)``, so whitespace tokens *inside* a sentence are
part of it.  Spans are ordered and never overlap.  When a token straddles a boundary (".ĠThe" as one token) the
next sentence's head stays with the previous sentence.  A sentence that owns no token (its whole text sits inside
such a token, or its span is whitespace) gets an empty span ``(i, i)`` right after the previous span;
:func:`check_token_spans` (run by :func:`token_spans` unless ``verify=False``) raises an
:class:`~anchors.errors.InputError` naming its index.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anchors.errors import InputError

Span = tuple[int, int]

__all__ = ["SentenceTokens", "check_token_spans", "encode_with_spans", "token_spans"]

_WHITESPACE_RUN = re.compile(r"\s+")


@dataclass(frozen=True)
class SentenceTokens:
    """The tokenization of ``full_text`` and each sentence's token span ``[start, end)`` in it."""

    input_ids: tuple[int, ...]
    offsets: tuple[Span, ...]  # character span of each token in full_text
    spans: tuple[Span, ...]  # one per sentence, in the order of the character spans given


def token_spans(
    tokenizer: Any,
    full_text: str,
    char_spans: Sequence[Span],
    *,
    add_special_tokens: bool = False,
    attach_whitespace: bool = False,
    verify: bool = True,
) -> list[Span]:
    """Token span ``[start, end)`` of each sentence in the tokenization of ``full_text`` (see the module rule).

    ``tokenizer`` is a Hugging Face fast tokenizer or a ``tokenizers.Tokenizer``.  With ``verify`` (default) the
    spans are decoded and checked (:func:`check_token_spans`).  Use :func:`encode_with_spans` for the ids too."""
    encoded = encode_with_spans(
        tokenizer, full_text, char_spans, add_special_tokens=add_special_tokens, attach_whitespace=attach_whitespace
    )
    if verify:
        check_token_spans(tokenizer, full_text, char_spans, encoded)
    return list(encoded.spans)


def encode_with_spans(
    tokenizer: Any,
    full_text: str,
    char_spans: Sequence[Span],
    *,
    add_special_tokens: bool = False,
    attach_whitespace: bool = False,
) -> SentenceTokens:
    """Tokenize ``full_text`` once and assign its tokens to sentences (no decoding check)."""
    _check_char_spans(full_text, char_spans)
    ids, offsets = _encode(tokenizer, full_text, add_special_tokens)
    visible = [_first_visible(full_text, *offset) for offset in offsets]
    owners = [_owner(char_spans, pos) for pos in visible]
    if attach_whitespace:
        owners = _attach_whitespace(owners, [pos is None for pos in visible])
    spans = _spans_from_owners(owners, len(char_spans))
    return SentenceTokens(input_ids=tuple(ids), offsets=tuple(offsets), spans=tuple(spans))


def check_token_spans(tokenizer: Any, full_text: str, char_spans: Sequence[Span], encoded: SentenceTokens) -> None:
    """Decode every sentence's tokens and check they spell its text.

    Each sentence must own at least one token, and the decoded text must contain the part of the sentence that
    its tokens cover; a head or tail of the sentence may sit in a neighbour's boundary token ("x.The" as one
    token), but only inside that one token.  Comparison ignores differences in whitespace (decoders differ in how
    they restore spaces).  Raises InputError naming the first sentence that fails."""
    if len(encoded.spans) != len(char_spans):
        raise InputError(f"{len(encoded.spans)} token spans for {len(char_spans)} sentences")
    for k, ((start, end), (tok_start, tok_end)) in enumerate(zip(char_spans, encoded.spans)):
        if tok_start >= tok_end:
            raise InputError(
                f"sentence {k} ({full_text[start:end][:60]!r}) maps to zero tokens: its text lies inside a token "
                "owned by a neighbouring sentence, or is only whitespace; merge it with a neighbour"
            )
        covered = _covered_text(full_text, (start, end), encoded, k)
        decoded = _decode(tokenizer, list(encoded.input_ids[tok_start:tok_end]))
        if _squash(covered) not in _squash(decoded):
            raise InputError(
                f"sentence {k}: its tokens decode to {decoded[:80]!r}, which does not contain {covered[:80]!r}"
            )


def _check_char_spans(full_text: str, char_spans: Sequence[Span]) -> None:
    previous_end = 0
    for k, (start, end) in enumerate(char_spans):
        if not 0 <= start < end <= len(full_text):
            raise InputError(f"sentence {k}: character span ({start}, {end}) is empty or outside the text")
        if start < previous_end:
            raise InputError(f"sentence {k}: character span ({start}, {end}) overlaps or precedes the one before")
        previous_end = end


def _encode(tokenizer: Any, text: str, add_special_tokens: bool) -> tuple[list[int], list[Span]]:
    """(ids, character offsets) from a HF fast tokenizer or a raw ``tokenizers.Tokenizer``."""
    if hasattr(tokenizer, "encode_batch") and hasattr(tokenizer, "get_vocab_size"):  # tokenizers.Tokenizer
        encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return list(encoding.ids), [tuple(o) for o in encoding.offsets]
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            "token spans need a fast tokenizer (one that returns offset mappings); load it with use_fast=True"
        )
    batch = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return list(batch["input_ids"]), [tuple(o) for o in batch["offset_mapping"]]


def _decode(tokenizer: Any, ids: list[int]) -> str:
    if hasattr(tokenizer, "encode_batch") and hasattr(tokenizer, "get_vocab_size"):
        return str(tokenizer.decode(ids, skip_special_tokens=False))
    return str(tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))


def _first_visible(text: str, start: int, end: int) -> int | None:
    """Index of the first non-whitespace character of ``text[start:end]``, or None."""
    m = _WHITESPACE_RUN.match(text, start, end)
    pos = m.end() if m else start
    return pos if pos < end else None


def _owner(char_spans: Sequence[Span], pos: int | None) -> int | None:
    """The sentence containing ``pos``, a token's first non-whitespace character (None: whitespace or outside)."""
    if pos is None:
        return None
    k = bisect.bisect_right(char_spans, (pos, float("inf"))) - 1
    return k if k >= 0 and pos < char_spans[k][1] else None


def _spans_from_owners(owners: list[int | None], n_sentences: int) -> list[Span]:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, k in enumerate(owners):
        if k is not None:
            first.setdefault(k, i)
            last[k] = i + 1
    spans: list[Span] = []
    for k in range(n_sentences):
        # An unowned sentence gets an empty span where it would start, which keeps the spans ordered.
        floor = spans[-1][1] if spans else 0
        spans.append((first[k], last[k]) if k in first else (floor, floor))
        if spans[-1][0] < floor:
            raise InputError(f"sentence {k}: its tokens interleave with the previous sentence's (offsets not monotone)")
    return spans


def _attach_whitespace(owners: list[int | None], blank: list[bool]) -> list[int | None]:
    """Give each whitespace-only token to the sentence owning the token before it (chains: "\n", "\n")."""
    out = list(owners)
    for i in range(1, len(out)):
        if blank[i] and out[i] is None:
            out[i] = out[i - 1]
    return out


def _covered_text(full_text: str, char_span: Span, encoded: SentenceTokens, k: int) -> str:
    """The part of sentence ``k`` spelled by its own tokens.  Under the ownership rule only its head can be
    missing, and only inside one token that starts before the sentence (a boundary token such as ".ĠThe")."""
    start, end = char_span
    tok_start, tok_end = encoded.spans[k]
    lo = max(start, encoded.offsets[tok_start][0])
    hi = min(end, max(o[1] for o in encoded.offsets[tok_start:tok_end]))
    if full_text[hi:end].strip():
        raise InputError(f"sentence {k}: its tokens stop before its end ({full_text[hi:end][:40]!r} is left out)")
    head = _visible_span(full_text, start, lo)
    if head is not None and not _in_boundary_token(full_text, encoded.offsets, head, start):
        raise InputError(f"sentence {k}: its start {full_text[start:lo][:40]!r} is in none of its tokens")
    return full_text[lo:hi]


def _visible_span(text: str, start: int, end: int) -> Span | None:
    """The span of ``text[start:end].strip()``, or None when that is empty."""
    piece = text[start:end]
    if not piece.strip():
        return None
    return start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())


def _in_boundary_token(full_text: str, offsets: Sequence[Span], head: Span, sentence_start: int) -> bool:
    """Whether one token holds ``head`` and starts (visibly) before the sentence does."""
    for a, b in offsets:
        first = _first_visible(full_text, a, b)
        if a <= head[0] and head[1] <= b and first is not None and first < sentence_start:
            return True
    return False


def _squash(text: str) -> str:
    """Whitespace-insensitive form: decoders differ in how they restore spaces; U+FFFD marks a cut UTF-8 char."""
    return _WHITESPACE_RUN.sub("", text).strip("\ufffd")
