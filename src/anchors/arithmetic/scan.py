"""Tokens of a sentence for the arithmetic-claim finder: numbers, operators, brackets, LaTeX commands, words,
and relations, with character spans.

One left-to-right pass of one regular expression (linear in the text), then small rewrites: operator words
("plus", "divided by", "3 x 4", "20% of"), relation words ("equals", "is", "is equal to", "gives"), negations
("is not", "≠") and approximations ("≈", "approximately", "is about"); range dashes ("440-449"), list bullets
and unit words after numbers ("12 apples + 5 apples", "15 pages/day") are taken out of the arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
_RELATION_WORDS = {"equals", "equal", "is", "gives", "giving", "yields", "makes", "get", "gets"}
# units that may be glued to a number ("19cm"); any other glued word makes the number symbolic ("2x", "3rd")
# (no one-letter units: "2m", "3h" read as symbols)
_GLUED_UNITS = {
    "cm", "mm", "km", "kg", "mg", "ml", "sec", "min", "hr", "hrs", "ft", "lb", "lbs", "oz", "mph", "kmh", "kph",
    "mi", "yd", "am", "pm", "dollars", "cents", "usd", "eur",
}  # fmt: skip
# words that join phrases and are never units ("0.06 and h = ..." keeps its "and")
_NOT_UNITS = {
    "and", "or", "then", "so", "but", "which", "that", "to", "by", "from", "of", "for", "with", "in", "on", "at",
    "the", "is", "are", "was", "were", "we", "you", "it", "if", "as", "plus", "minus", "times", "mod", "over",
}  # fmt: skip
_APPROX_WORDS = {"approximately", "approx", "about", "roughly", "around", "nearly", "almost"}
_NEGATIONS = {"not", "isn't", "doesn't", "never"}


@dataclass(frozen=True)
class Token:
    kind: str  # NUM OP LPAR RPAR FRAC SQRT PCT SUP REL NEQ WORD PUNCT
    text: str  # canonical: NUM digits ('.' decimal, separators dropped); OP + - * / ^ mod; REL '=' or '≈'
    start: int
    end: int
    attached: bool  # no whitespace right before it




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
    """'12 apples (Tom) + 5 apples = 17 apples', '4 days * 15 pages/day = 60', '= 19cm', '60 cm²': unit
    words right after a number are dropped when an operator, a relation, punctuation or the end follows them
    (so "5 and 3 + 2" keeps its "and"); a word glued to the number must be a known unit ("2x" stays)."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        out.append(tokens[i])
        if tokens[i].kind == "NUM" and i + 1 < len(tokens):
            end = _unit_end(tokens, i + 1)
            glued_ok = not tokens[i + 1].attached or tokens[i + 1].text.lower() in _GLUED_UNITS
            if end > i + 1 and glued_ok and (end == len(tokens) or _ends_units(tokens[end])):
                i = end
                continue
        i += 1
    return out


def _ends_units(token: Token) -> bool:
    """What may follow units that are dropped: an operator, a relation, punctuation, or a verb's connector
    ("multiply 42.5 km by 18")."""
    return token.kind in ("OP", "REL", "PUNCT") or (token.kind == "WORD" and token.text.lower() in ("by", "to", "from"))


def _unit_end(tokens: list[Token], start: int) -> int:
    """End of a run of up to 4 unit words from `start`: plain words (2+ letters), 'pages/day', '(Tom)'."""
    i, words = start, 0
    while i < len(tokens) and words < 4:
        if _is_unit_word(tokens[i]):
            i, words = i + 1, words + 1
        elif _is_op(tokens, i, "/") and words and i + 1 < len(tokens) and _after_slash(tokens[i + 1]):
            i, words = i + 2, words + 1  # "pages/day", "km/h"
        elif tokens[i].kind == "LPAR" and words and i + 2 < len(tokens) and _is_unit_word(tokens[i + 1]) and tokens[i + 2].kind == "RPAR":
            i += 3  # "(Tom)"
        elif tokens[i].kind == "SUP" and words:
            i += 1  # "cm²"
        else:
            break
    return i


def _after_slash(token: Token) -> bool:
    return token.kind == "WORD" and token.attached and token.text.isalpha() and token.text.lower() not in _NOT_UNITS


def _is_unit_word(token: Token) -> bool:
    text = token.text.lower()
    return token.kind == "WORD" and len(text) >= 2 and text.isalpha() and text not in _NOT_UNITS


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
        elif word in ("us", "you", "me", "them") and out and out[-1].kind == "REL":
            continue  # "which gives us 10"
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
