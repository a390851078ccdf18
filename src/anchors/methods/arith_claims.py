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

Scanning is linear in the sentence and every evaluation is size-guarded, so no sentence can hang it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from anchors.methods.arith_eval import ArithError, DivisionByZero, ParseFailure, Unverifiable, evaluate

Verdict = Literal["valid", "invalid", "unchecked"]
SentenceLabel = Literal["valid", "invalid", "no_claim"]

MAX_SENTENCE_CHARS = 20_000  # longer "sentences" are checked on their first 20,000 characters
MAX_OPERAND_TOKENS = 60  # operands are searched this far from their relation
MAX_CLAIMS = 200
ARITH_KINDS = frozenset({"NUM", "OP", "LPAR", "RPAR", "FRAC", "SQRT", "PCT", "SUP"})
OPERATOR_KINDS = frozenset({"OP", "FRAC", "SQRT", "PCT", "SUP"})

_TOKEN = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<ignore>\$|\\[()\[\]]|\\boxed(?![A-Za-z])|\\[,;:!> ]|\\q?quad(?![A-Za-z])|\\left\.|\\right\.|\\displaystyle(?![A-Za-z])|\*\*|&)
    |(?P<lpar>\\left\s*(?:[(\[]|\\\{)|\\\{|[(\[{])
    |(?P<rpar>\\right\s*(?:[)\]]|\\\})|\\\}|[)\]}])
    |(?P<text>\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{[^{}]*\})
    |(?P<frac>\\[dt]?frac(?![A-Za-z]))
    |(?P<sqrt>\\sqrt(?![A-Za-z])|√)
    |(?P<num>\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?)
    |(?P<pct>\\%|%)
    |(?P<sup>[²³])
    |(?P<neq>≠|\\neq?(?![A-Za-z])|!=)
    |(?P<approx>≈|≃|\\approx(?![A-Za-z])|\\simeq(?![A-Za-z]))
    |(?P<eq>==?|＝)
    |(?P<op>\\times(?![A-Za-z])|\\cdot(?![A-Za-z])|\\ast(?![A-Za-z])|\\div(?![A-Za-z])|\\bmod(?![A-Za-z])
        |\\mod(?![A-Za-z])|[+\-−*×·⋅∙/÷^]|(?<=\s)–(?=\s))
    |(?P<sub>_)
    |(?P<cmd>\\[A-Za-z]+)
    |(?P<word>[A-Za-z]+(?:'[A-Za-z]+)?)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_CANONICAL_OPS = {
    "\\times": "*", "\\cdot": "*", "\\ast": "*", "×": "*", "·": "*", "⋅": "*", "∙": "*", "*": "*",
    "\\div": "/", "÷": "/", "/": "/", "−": "-", "–": "-", "-": "-", "+": "+", "^": "^",
    "\\bmod": "mod", "\\mod": "mod",
}  # fmt: skip
_WORD_OPS = {"plus": "+", "minus": "-", "times": "*", "mod": "mod"}
_RELATION_WORDS = {"equals", "equal", "is", "gives", "yields", "makes"}
_APPROX_WORDS = {"approximately", "approx", "about", "roughly", "around", "nearly", "almost"}
_NEGATIONS = {"not", "isn't", "doesn't", "never"}
_QUOTIENT = ("remainder", "full", "complete", "whole", "left over", "leftover")


@dataclass(frozen=True)
class Token:
    kind: str  # NUM OP LPAR RPAR FRAC SQRT PCT SUP REL NEQ WORD PUNCT
    text: str  # canonical: NUM digits ('.' decimal, separators dropped); OP + - * / ^ mod; REL '=' or '≈'
    start: int
    end: int
    attached: bool  # no whitespace right before it


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
        if left is None or right is None or not _has_operator(left + right):
            continue
        if _is_noun_phrase_tail(sentence, tokens, left, low, at):
            continue
        claims.append(_claim(sentence, tokens, left, right, tokens[at].text, quotient))
    return claims


# ---------------------------------------------------------------------------------------------
# Scanning
# ---------------------------------------------------------------------------------------------


def scan(text: str) -> list[Token]:
    """Tokens of `text` (whitespace and pure markup dropped), words mapped to operators and relations."""
    raw: list[Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("ws", "ignore") or _is_bullet(text, match):
            continue
        start, end = match.span()
        attached = bool(raw) and raw[-1].end == start  # glued to the previous token ("2x", "12cm")
        raw.append(Token(*_classify(kind, match.group()), start, end, attached))  # type: ignore[arg-type]
    return _drop_units(_relations(_word_operators(_ranges(raw))))


def _drop_units(tokens: list[Token]) -> list[Token]:
    """'12 apples (Tom) + 5 apples = 17 apples', '4 days * 15 pages/day = 60': unit words right after a
    number are dropped when an operator or a relation follows them (so "5 and 3 + 2" keeps its "and")."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        out.append(tokens[i])
        if tokens[i].kind == "NUM":
            end = _unit_end(tokens, i + 1)
            if end > i + 1 and end < len(tokens) and tokens[end].kind in ("OP", "REL"):
                i = end
                continue
        i += 1
    return out


def _unit_end(tokens: list[Token], start: int) -> int:
    """End of a run of up to 4 unit words from `start`: plain words (2+ letters), 'pages/day', '(Tom)'."""
    i, words = start, 0
    while i < len(tokens) and words < 4:
        if _is_unit_word(tokens[i]):
            i, words = i + 1, words + 1
        elif _is_op(tokens, i, "/") and words and i + 1 < len(tokens) and _is_unit_word(tokens[i + 1]) and tokens[i + 1].attached:
            i += 1  # the word after the slash is taken next
        elif tokens[i].kind == "LPAR" and words and i + 2 < len(tokens) and _is_unit_word(tokens[i + 1]) and tokens[i + 2].kind == "RPAR":
            i += 3  # "(Tom)"
        else:
            break
    return i


def _is_unit_word(token: Token) -> bool:
    return token.kind == "WORD" and len(token.text) >= 2 and token.text.isalpha()


def _is_op(tokens: list[Token], i: int, text: str) -> bool:
    return i < len(tokens) and tokens[i].kind == "OP" and tokens[i].text == text


def _is_bullet(text: str, match: re.Match[str]) -> bool:
    """A list bullet ("- 488 - 400 + 1 = 89"): '-', '*' or '•' first on its line, followed by a space."""
    if match.group() not in ("-", "*", "•") or not text[match.end() : match.end() + 1].isspace():
        return False
    line_start = text.rfind("\n", 0, match.start()) + 1
    return not text[line_start : match.start()].strip()


def _ranges(tokens: list[Token]) -> list[Token]:
    """'440-449', '(100-199)': a glued hyphen between two integers, the first smaller, is a range dash."""
    out = list(tokens)
    for i in range(1, len(tokens) - 1):
        before, dash, after = tokens[i - 1], tokens[i], tokens[i + 1]
        if dash.kind == "OP" and dash.text == "-" and dash.attached and after.attached:
            if before.kind == after.kind == "NUM" and before.text.isdigit() and after.text.isdigit():
                if int(before.text) < int(after.text):
                    out[i] = _as(dash, "PUNCT", "–")
    return out


def _classify(kind: str, lexeme: str) -> tuple[str, str]:
    if kind == "num":
        return "NUM", lexeme.replace("{,}", "").replace(",", "")
    if kind == "op":
        return "OP", _CANONICAL_OPS[lexeme]
    if kind == "sup":
        return "SUP", "2" if lexeme == "²" else "3"
    if kind == "text":
        inner = lexeme[lexeme.index("{") + 1 : -1].strip()
        return ("OP", "mod") if inner == "mod" else ("WORD", inner or "text")
    simple = {"lpar": "LPAR", "rpar": "RPAR", "frac": "FRAC", "sqrt": "SQRT", "pct": "PCT", "neq": "NEQ"}
    if kind in simple:
        return simple[kind], "[" if lexeme.endswith("[") else lexeme
    if kind == "approx":
        return "REL", "≈"
    if kind == "eq":
        return "REL", "="
    if kind in ("sub", "cmd", "word"):
        return "WORD", lexeme
    return "PUNCT", lexeme


def _word_operators(tokens: list[Token]) -> list[Token]:
    """plus/minus/times/mod, 'multiplied by', 'divided by', '% of', 'percent' and '3 x 4' become operators."""
    out: list[Token] = []
    for i, token in enumerate(tokens):
        word = token.text.lower() if token.kind == "WORD" else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if word in _WORD_OPS:
            out.append(_as(token, "OP", _WORD_OPS[word]))
        elif word in ("multiplied", "divided") and nxt is not None and nxt.text.lower() == "by":
            out.append(_as(token, "OP", "*" if word == "multiplied" else "/"))
        elif word == "by" and out and out[-1].kind == "OP" and tokens[i - 1].text.lower() in ("multiplied", "divided"):
            continue
        elif word in ("squared", "cubed"):
            out.append(_as(token, "SUP", "2" if word == "squared" else "3"))
        elif word == "percent":
            out.append(_as(token, "PCT", "%"))
        elif word == "of" and out and out[-1].kind == "PCT":
            out.append(_as(token, "OP", "*"))
        elif word == "x" and out and out[-1].kind in ("NUM", "RPAR") and nxt is not None and nxt.kind in ("NUM", "LPAR"):
            out.append(_as(token, "OP", "*"))
        else:
            out.append(token)
    return out


def _relations(tokens: list[Token]) -> list[Token]:
    """Relation words (equals, is, is equal to, gives ...), negations (is not, ≠) and approximations."""
    out: list[Token] = []
    for i, token in enumerate(tokens):
        word = token.text.lower() if token.kind == "WORD" else None
        if word in _APPROX_WORDS and out and out[-1].kind == "REL":
            out[-1] = _as(out[-1], "REL", "≈")
        elif word in _NEGATIONS and out and out[-1].kind == "REL":
            out[-1] = _as(out[-1], "NEQ", "≠")
        elif word in ("to",) and out and out[-1].kind in ("REL", "NEQ") and tokens[i - 1].text.lower() == "equal":
            continue
        elif word == "equal" and out and out[-1].kind in ("REL", "NEQ"):
            continue  # "is equal (to)": one relation
        elif word in _RELATION_WORDS:
            out.append(_relation_word(token, out))
        elif token.kind == "REL" and out and out[-1].kind == "WORD" and out[-1].text.lower() in _APPROX_WORDS:
            out.append(_as(token, "REL", "≈"))  # "approximately equals", "approximately ="
        else:
            out.append(token)
    return out


def _relation_word(token: Token, before: list[Token]) -> Token:
    previous = before[-1].text.lower() if before else ""
    if previous in _NEGATIONS or previous in ("doesn't", "does"):
        return _as(token, "NEQ", "≠")
    approx = previous in _APPROX_WORDS and token.text.lower() in ("equals", "equal")
    return _as(token, "REL", "≈" if approx else "=")


def _as(token: Token, kind: str, text: str) -> Token:
    return Token(kind, text, token.start, token.end, token.attached)


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


def _has_operator(tokens: Sequence[Token]) -> bool:
    return any(t.kind in OPERATOR_KINDS for t in tokens)


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def _claim(sentence: str, tokens: list[Token], left: list[Token], right: list[Token], relation: str, quotient: bool) -> Claim:
    start, end = left[0].start, right[-1].end
    verdict, reason, values = _verdict(left, right, relation, _is_question(tokens, right), quotient)
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


def _verdict(
    left: list[Token], right: list[Token], relation: str, question: bool, quotient: bool
) -> tuple[Verdict, str, tuple[str | None, str | None]]:
    try:
        lhs, rhs = evaluate(left), evaluate(right)
    except DivisionByZero as exc:
        return "invalid", str(exc), (None, None)
    except (Unverifiable, ParseFailure) as exc:
        return "unchecked", str(exc), (None, None)
    values = (_show(lhs), _show(rhs))
    if question:
        return "unchecked", "a question, not an assertion", values
    holds, how = _holds(lhs, rhs, relation, _precision(left, right))
    if holds is None:
        return "unchecked", how, values
    if not holds:
        lenient = _lenient_reading(lhs, rhs, left, right, relation, quotient)
        if lenient:
            return "valid", lenient, values
    return ("valid" if holds else "invalid"), how, values


def _lenient_reading(
    lhs: Any, rhs: Any, left: list[Token], right: list[Token], relation: str, quotient: bool
) -> str | None:
    """The usual ways of writing a true step that read false literally (each documented in the module)."""
    if _running_total(lhs, right):
        return "running total"
    if right[-1].kind == "PCT" and _safe_equal(left, right[:-1], relation):
        return "percent notation"  # 0.0617 * 100 = 6.17%
    if _within_rounding_of_literals(lhs, rhs, left, right):
        return "rounded intermediate values"
    if quotient and _integer_quotient(left, rhs):
        return "integer quotient"
    return None


def _safe_equal(left: list[Token], right: list[Token], relation: str) -> bool:
    try:
        holds, _ = _holds(evaluate(left), evaluate(right), relation, _precision(left, right))
    except ArithError:
        return False
    return bool(holds)


def _within_rounding_of_literals(lhs: Any, rhs: Any, left: list[Token], right: list[Token]) -> bool:
    """'1.005^5 = 1.020150501 * 1.005': when both sides are expressions, decimals with 3 or more places are
    earlier results, probably rounded; allow the relative error they can carry (sum of 10^-d / |value|)."""
    import sympy

    if _precision(left, right) is not None:
        return False  # a side written as one number has its own precision rule
    long_decimals = [t.text for t in left + right if t.kind == "NUM" and len(t.text.partition(".")[2]) >= 3]
    long_decimals = [d for d in long_decimals if sympy.Rational(d) != 0]
    if not long_decimals:
        return False
    relative = sum(sympy.Rational(1, 10 ** len(d.split(".")[1])) / abs(sympy.Rational(d)) for d in long_decimals)
    exact, stated = _as_rational(lhs), _as_rational(rhs)
    return exact is not None and stated is not None and abs(exact - stated) <= relative * abs(stated)


def _integer_quotient(left: list[Token], rhs: Any) -> bool:
    """'89 divided by 10 is 8 full sets (remainder 9)': a / b stated as its whole-number quotient, in a
    sentence that speaks of remainders or full/complete groups."""
    if [t.kind for t in left] != ["NUM", "OP", "NUM"] or left[1].text != "/" or not getattr(rhs, "is_Integer", False):
        return False
    a, b = left[0].text, left[2].text
    return a.isdigit() and b.isdigit() and int(b) > 0 and int(a) // int(b) == int(rhs)


def _precision(left: list[Token], right: list[Token]) -> tuple[int, int] | None:
    """(decimal places, trailing zeros) of the side written as one plain number (the right one first)."""
    for side in (right, left):
        numbers = [t for t in side if t.kind == "NUM"]
        plain = len(numbers) == 1 and all(t.kind == "NUM" or (t.kind == "OP" and t.text == "-") for t in side)
        if plain:
            digits = numbers[0].text
            if "." in digits:
                return len(digits.split(".")[1]), 0
            return 0, len(digits) - len(digits.rstrip("0")) if digits.strip("0") else 0
    return None


def _holds(lhs: Any, rhs: Any, relation: str, precision: tuple[int, int] | None) -> tuple[bool | None, str]:
    exact, rhs_exact = _as_rational(lhs), _as_rational(rhs)
    if exact is None or rhs_exact is None:
        return None, "not a real number"
    if exact == rhs_exact:
        return True, "exact"
    unit = _stated_unit(relation, precision)
    if unit is not None and _rounds_to(exact, rhs_exact, unit):
        return True, "rounded" if relation == "=" else "approximately"
    if relation == "≈" and abs(exact - rhs_exact) <= abs(rhs_exact) / 100:
        return True, "approximately"
    if precision is None and not (lhs - rhs).is_Rational and abs(exact - rhs_exact) < _EPSILON * max(1, abs(rhs_exact)):
        return True, "numerically equal"
    return False, "wrong value"


_EPSILON = 10**-20


def _as_rational(value: Any) -> Any:
    """The value itself if rational, else a 30-digit rational approximation; None if not real."""
    import sympy

    if value.is_Rational:
        return value
    approx = sympy.N(value, 30)
    return sympy.Rational(approx) if approx.is_real else None


def _stated_unit(relation: str, precision: tuple[int, int] | None) -> Any:
    """The place value of the last stated digit: 0.01 for '3.33'; for ≈ also 10 for '140'; None: exact."""
    import sympy

    if precision is None:
        return None
    decimals, zeros = precision
    if decimals:
        return sympy.Rational(1, 10**decimals)
    return sympy.Integer(10) ** zeros if relation == "≈" and zeros else None


def _rounds_to(exact: Any, stated: Any, unit: Any) -> bool:
    """Is `stated` the exact value rounded (half a unit) or truncated to the stated precision?"""
    import sympy

    if abs(exact - stated) * 2 <= unit:
        return True
    truncated = sympy.sign(exact) * sympy.floor(abs(exact) / unit) * unit
    return bool(truncated == stated)


def _running_total(lhs: Any, right: list[Token]) -> bool:
    """'2 * 3 = 6 + 1 = 7': the right side continues from the left side's value."""
    if len(right) < 3 or right[0].kind != "NUM" or right[1].kind != "OP":
        return False
    try:
        return bool(evaluate(right[:1]) == lhs)
    except ArithError:
        return False


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:28] + "…" + text[-28:]
