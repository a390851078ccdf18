"""Find arithmetic claims in a sentence ("3 × 13 = 39", "so 48/2 = 24", "\\(\\frac{48}{2} = 24\\)",
"3 times 13 is 39", "1 + 3*4 = 1 + 12 = 13") and check each with exact arithmetic (`arith_eval`).

How a claim is found: the sentence is scanned once into tokens (numbers, operators, brackets, LaTeX commands,
words, relations such as `=`, `≈`, "equals", "is"). For every relation, the left operand is the longest run
of arithmetic tokens ending right before it that parses as one expression, and the right operand the longest
such run starting right after it. A link counts as a claim only when an operand has an operator (so "x = 5"
and "Step 2 = ..." are not claims) and both operands are cleanly delimited: an operand cut out of a larger
symbolic expression ("x^2 + 3 = 12", "2x = 8", "66666_{16} = ...") is dropped, never checked, because checking
the cut piece would report a false error.

Verdicts: `valid`, `invalid` (a wrong value, or a division by zero) or `unchecked` (too large, not a real
number, a question such as "3 × 13 = 38?"). Equality is exact, except that a decimal written with d places
may differ from the exact value by less than 10^-d (rounding or truncation: "10/3 = 3.33"), and `≈` (also
"approximately", "about") accepts a difference up to one unit of the last stated digit or 1 %. A chain
"2 * 3 = 6 + 1 = 7" reads as a running total: a link whose right side starts with the left side's value
("6 + 1" after "2 * 3") is valid.

Scanning (`arith_scan`) is linear in the sentence and every evaluation (`arith_eval`) is size-guarded, so
no sentence can hang it; `arith_verdict` decides each claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from anchors.arithmetic.evaluate import ArithError, ParseFailure, evaluate
from anchors.arithmetic.scan import Token, scan
from anchors.arithmetic.verdict import Verdict
from anchors.arithmetic.verdict import verdict as judge

SentenceLabel = Literal["valid", "invalid", "no_claim"]

MAX_SENTENCE_CHARS = 20_000  # longer "sentences" are checked on their first 20,000 characters
MAX_OPERAND_TOKENS = 60  # operands are searched this far from their relation
MAX_CLAIMS = 200
ARITH_KINDS = frozenset({"NUM", "OP", "LPAR", "RPAR", "FRAC", "SQRT", "PCT", "SUP"})
OPERATOR_KINDS = frozenset({"OP", "FRAC", "SQRT", "PCT", "SUP"})

_QUOTIENT = ("remainder", "full", "complete", "whole", "left over", "leftover")

@dataclass(frozen=True)
class Claim:
    """One checked arithmetic claim: `text` = sentence[start:end]; `lhs` / `rhs` are the operands as written."""

    text: str
    start: int
    end: int
    lhs: str
    rhs: str
    relation: str  # '=' or '≈'
    verdict: Verdict
    reason: str  # why invalid/unchecked, or how a valid claim was accepted ("exact", "rounded", ...)
    lhs_value: str | None
    rhs_value: str | None
    number_spans: tuple[tuple[int, int], ...]  # every number in the claim (sentence offsets)
    operator_spans: tuple[tuple[int, int], ...]  # every + - * / operator in the claim
    rhs_span: tuple[int, int]


@dataclass(frozen=True)
class SentenceCheck:
    """A sentence's verdict: invalid if any claim is invalid, valid if a claim is valid, else no_claim."""

    label: SentenceLabel
    claims: tuple[Claim, ...]

    @property
    def n_valid(self) -> int:
        return sum(c.verdict == "valid" for c in self.claims)

    @property
    def n_invalid(self) -> int:
        return sum(c.verdict == "invalid" for c in self.claims)

    @property
    def n_unchecked(self) -> int:
        return sum(c.verdict == "unchecked" for c in self.claims)


def check_sentence(sentence: str) -> SentenceCheck:
    """Extract and check every arithmetic claim of `sentence`; never raises on any string."""
    claims = tuple(extract_claims(sentence))
    if any(c.verdict == "invalid" for c in claims):
        return SentenceCheck("invalid", claims)
    if any(c.verdict == "valid" for c in claims):
        return SentenceCheck("valid", claims)
    return SentenceCheck("no_claim", claims)


def extract_claims(sentence: str) -> list[Claim]:
    """Every arithmetic claim in `sentence`, in order, each with its verdict."""
    tokens = scan(sentence[:MAX_SENTENCE_CHARS])
    relations = [i for i, t in enumerate(tokens) if t.kind in ("REL", "NEQ")]
    claims: list[Claim] = []
    quotient = any(word in sentence.lower() for word in _QUOTIENT)
    for j, at in enumerate(relations):
        if tokens[at].kind == "NEQ" or len(claims) >= MAX_CLAIMS:
            continue
        low = relations[j - 1] + 1 if j else 0
        high = relations[j + 1] if j + 1 < len(relations) else len(tokens)
        left = _operand_before(tokens, low, at)
        right = _operand_after(tokens, at + 1, high)
        if left is None or right is None or _is_noun_phrase_tail(sentence, tokens, left, low, at):
            continue
        if _has_operator(left + right) or _is_bare_equality(sentence, tokens, left, right, low, at):
            claims.append(_claim(sentence, tokens, left, right, tokens[at].text, quotient))
    claims += _verb_claims(sentence, tokens, relations, quotient)[: MAX_CLAIMS - len(claims)]
    return sorted(claims, key=lambda c: c.start)


# ---------------------------------------------------------------------------------------------
# Operands
# ---------------------------------------------------------------------------------------------


def _operand_before(tokens: list[Token], low: int, high: int) -> list[Token] | None:
    """The longest parseable run of arithmetic tokens ending at `high`, if cleanly delimited on its left."""
    start = high
    while start > max(low, high - MAX_OPERAND_TOKENS) and tokens[start - 1].kind in ARITH_KINDS:
        start -= 1
    for first in range(start, high):
        candidate = tokens[first:high]
        if candidate[0].kind == "OP" and not _is_sign(candidate):
            continue
        if not _parses(candidate):
            continue
        return candidate if _clean_left_edge(tokens, first, low) else None
    return None


def _operand_after(tokens: list[Token], low: int, high: int) -> list[Token] | None:
    """The longest parseable run of arithmetic tokens starting at `low`, if cleanly delimited on its right."""
    end = low
    while end < min(high, low + MAX_OPERAND_TOKENS) and tokens[end].kind in ARITH_KINDS:
        end += 1
    for last in range(end, low, -1):
        candidate = tokens[low:last]
        if not _parses(candidate):
            continue
        return candidate if _clean_right_edge(tokens, last, high) else None
    return None


def _is_sign(candidate: Sequence[Token]) -> bool:
    """A leading '-' is a sign only when written as a symbol glued to the number ('-5', not 'minus 5', '- 5')."""
    first = candidate[0]
    return first.text == "-" and first.end - first.start == 1 and len(candidate) > 1 and candidate[1].attached


def _parses(candidate: Sequence[Token]) -> bool:
    try:
        evaluate(candidate)
    except ParseFailure:
        return False
    except ArithError:
        return True  # well-formed; the verdict says why it can't be checked
    return True


def _is_variable(token: Token) -> bool:
    """A symbol that makes a neighbouring operand symbolic: a single letter (but not the article 'a'),
    a LaTeX command such as \\pi, a subscript, or any word glued to the operand."""
    return token.kind == "WORD" and (
        (len(token.text) == 1 and token.text != "a") or token.text.startswith(("\\", "_"))
    )


def _clean_left_edge(tokens: list[Token], first: int, low: int) -> bool:
    if first == low:
        return True  # right after the previous relation (a chain) or at the sentence start
    before = tokens[first - 1]
    if before.kind == "WORD" and [t.kind for t in tokens[first:]][:3] == ["LPAR", "NUM", "RPAR"]:
        return False  # "hundreds (89) = ...": a label's annotation, not an operand
    if before.kind == "RPAR" and not tokens[first].attached and tokens[first].kind in ("NUM", "LPAR"):
        return True  # a list marker: "1) 12 - 5 = 7"
    if before.kind in ("OP", "SUP", "FRAC", "SQRT", "NUM", "RPAR", "PCT"):
        return False  # we would be checking a piece cut out of a longer expression
    if before.kind == "WORD" and (_is_variable(before) or tokens[first].attached):
        return False
    return True


def _clean_right_edge(tokens: list[Token], last: int, high: int) -> bool:
    if last == high:
        return True
    after = tokens[last]
    if after.kind in ("OP", "SUP", "NUM", "FRAC", "SQRT") or (after.kind == "LPAR" and after.attached):
        return False
    if after.kind == "WORD" and (_is_variable(after) or after.attached):
        return False
    return True


def _is_noun_phrase_tail(sentence: str, tokens: list[Token], left: list[Token], low: int, at: int) -> bool:
    """'the integers from 319 to 3183 is equal to ...': with a word relation, a bare number after a word
    ends a noun phrase; it is not the subject of an arithmetic claim."""
    relation = tokens[at]
    word_relation = sentence[relation.start : relation.start + 1].isalpha()
    first = at - len(left)
    return word_relation and not _has_operator(left) and first > low and tokens[first - 1].kind == "WORD"


def _is_bare_equality(sentence: str, tokens: list[Token], left: list[Token], right: list[Token], low: int, at: int) -> bool:
    """'56 cm² = 120 cm²': two different plain numbers around a written '=' (not a word relation, and not after
    a word: "Step 2 = ...")."""
    symbol = not sentence[tokens[at].start : tokens[at].start + 1].isalpha()
    first = at - len(left)
    after_word = first > low and tokens[first - 1].kind == "WORD"
    differ = [t.text for t in left] != [t.text for t in right]  # "14 = 14" restates, it computes nothing
    return symbol and not after_word and differ and _is_plain_number(left) and _is_plain_number(right)


def _is_plain_number(tokens: Sequence[Token]) -> bool:
    kinds = [t.kind for t in tokens]
    return kinds == ["NUM"] or (kinds == ["OP", "NUM"] and tokens[0].text == "-")


_VERBS = {  # verb -> (connector word, operator, whether the operands swap: "subtract a from b" is b - a)
    "multiply": ("by", "*", False), "multiplied": ("by", "*", False), "multiplying": ("by", "*", False),
    "divide": ("by", "/", False), "divided": ("by", "/", False), "dividing": ("by", "/", False),
    "add": ("to", "+", True), "added": ("to", "+", True), "adding": ("to", "+", True),
    "subtract": ("from", "-", True), "subtracted": ("from", "-", True), "subtracting": ("from", "-", True),
}  # fmt: skip


def _verb_claims(sentence: str, tokens: list[Token], relations: list[int], quotient: bool) -> list[Claim]:
    """'divide 50 by 12, which gives 2', 'I multiplied 11*11 by 10 to get 101', 'added 40 to 40 to get 80':
    a verb, two numeric operands joined by its connector word, and within four tokens a relation and a result."""
    claims = []
    for i, token in enumerate(tokens):
        spec = _VERBS.get(token.text.lower()) if token.kind == "WORD" else None
        found = _verb_operands(tokens, i + 1, spec[0], relations) if spec else None
        if spec is None or found is None:
            continue
        a, b, relation, result = found
        first, second = (b, a) if spec[2] else (a, b)
        left = [_synthetic(first[0], "LPAR", "("), *first, _synthetic(first[-1], "RPAR", ")"), _synthetic(token, "OP", spec[1]),
                _synthetic(second[0], "LPAR", "("), *second, _synthetic(second[-1], "RPAR", ")")]
        claim = _claim(sentence, tokens, left, result, tokens[relation].text, quotient)
        lhs = sentence[token.start : max(a[-1].end, b[-1].end)]
        claims.append(replace(claim, start=token.start, text=sentence[token.start : claim.end], lhs=lhs))
    return claims


def _verb_operands(tokens: list[Token], start: int, connector: str, relations: list[int]) -> tuple[Any, ...] | None:
    """(operand a, operand b, relation index, result) after a verb, or None."""
    joint = next((j for j in range(start, min(start + MAX_OPERAND_TOKENS, len(tokens))) if tokens[j].kind == "WORD"), None)
    if joint is None or tokens[joint].text.lower() != connector:
        return None
    a = _operand_after(tokens, start, joint)
    relation = next((r for r in relations if r > joint), None)
    if a is None or len(a) != joint - start or relation is None or tokens[relation].kind != "REL":
        return None
    b_end = next((j for j in range(joint + 1, relation) if tokens[j].kind not in ARITH_KINDS), relation)
    b = _operand_after(tokens, joint + 1, b_end)
    if b is None or relation - (joint + 1 + len(b)) > 4 or any(t.kind == "NUM" for t in tokens[joint + 1 + len(b) : relation]):
        return None
    following = next((r for r in relations if r > relation), len(tokens))
    result = _operand_after(tokens, relation + 1, following)
    return None if result is None else (a, b, relation, result)


def _synthetic(near: Token, kind: str, text: str) -> Token:
    """A bracket or operator the verb implies, placed at a real token's span (spans stay in the sentence)."""
    return Token(kind, text, near.start, near.start, True)


def _has_operator(tokens: Sequence[Token]) -> bool:
    return any(t.kind in OPERATOR_KINDS for t in tokens)


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def _claim(sentence: str, tokens: list[Token], left: list[Token], right: list[Token], relation: str, quotient: bool) -> Claim:
    start, end = left[0].start, right[-1].end
    verdict, reason, values = judge(left, right, relation, _is_question(tokens, right), quotient)
    spans = [(t.start, t.end) for t in left + right]
    return Claim(
        text=sentence[start:end], start=start, end=end,
        lhs=sentence[left[0].start : left[-1].end], rhs=sentence[right[0].start : right[-1].end],
        relation=relation, verdict=verdict, reason=reason, lhs_value=values[0], rhs_value=values[1],
        number_spans=tuple(s for s, t in zip(spans, left + right) if t.kind == "NUM"),
        operator_spans=tuple(s for s, t in zip(spans, left + right) if t.kind == "OP" and t.text in "+-*/"),
        rhs_span=(right[0].start, right[-1].end),
    )  # fmt: skip


def _is_question(tokens: list[Token], right: list[Token]) -> bool:
    after = next((i for i, t in enumerate(tokens) if t.start >= right[-1].end), None)
    return after is not None and tokens[after].kind == "PUNCT" and tokens[after].text == "?"
