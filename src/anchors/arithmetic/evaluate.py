"""Parse and evaluate one arithmetic expression (tokens from `arith_claims`) exactly, with sympy, safely.

No `eval`, no `sympy.sympify`/`parse_expr` (both call Python's eval): a small recursive-descent parser builds
the value directly from sympy numbers. Every operation is size-guarded, so no input can make it hang or eat
memory: literals longer than `MAX_LITERAL_DIGITS`, intermediate values over `MAX_BITS` bits, powers whose
result would exceed that, roots of degree over `MAX_ROOT_DEGREE` and expressions over `MAX_TOKENS` tokens are
refused with `Unverifiable`. Division by zero raises `DivisionByZero` (the caller decides what it means).

Grammar (precedence low to high; `^` is right-associative, `%` is a postfix "/100"):

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/' | 'mod' | <implicit before a glued '(' or a function>) unary)*
    unary   := '-' unary | power
    power   := postfix ('^' unary | '²' | '³')*
    postfix := atom '%'*
    atom    := NUM | '(' expr ')' | FRAC group group | SQRT ['[' expr ']'] (group | atom)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_LITERAL_DIGITS = 400
MAX_BITS = 20_000  # ~6,000 decimal digits per numerator/denominator
MAX_ROOT_DEGREE = 12
MAX_TOKENS = 120


class ArithError(Exception):
    """Base of the evaluator's refusals."""


class ParseFailure(ArithError):
    """The tokens are not one well-formed expression."""


class Unverifiable(ArithError):
    """Well-formed, but not checkable here (too large, not real, not an integer for mod, ...)."""


class DivisionByZero(ArithError):
    """The expression divides by zero."""


@dataclass(frozen=True)
class Tok:
    """What the parser needs of a token: its kind and canonical text (see `arith_claims.Token`)."""

    kind: str  # NUM OP LPAR RPAR FRAC SQRT PCT SUP
    text: str  # NUM: digits with '.' (separators removed); OP: + - * / ^ mod; SUP: the exponent digits
    attached: bool = True  # glued to the previous token (an LPAR needs it to multiply: "2(3)")


def evaluate(tokens: Sequence[Any]) -> Any:
    """The exact sympy value of `tokens` (objects with `.kind` and `.text`), or an `ArithError`."""
    if not tokens:
        raise ParseFailure("empty expression")
    if len(tokens) > MAX_TOKENS:
        raise Unverifiable(f"expression longer than {MAX_TOKENS} tokens")
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.pos != len(tokens):
        raise ParseFailure(f"unexpected {tokens[parser.pos].text!r}")
    return value


class _Parser:
    def __init__(self, tokens: Sequence[Any]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Any | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> Any:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            raise ParseFailure(f"expected {text or kind}")
        self.pos += 1
        return token

    def at(self, kind: str, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == kind and (not texts or token.text in texts)

    def expr(self) -> Any:
        value = self.term()
        while self.at("OP", "+", "-"):
            op = self.take("OP").text
            value = _binary(op, value, self.term())
        return value

    def term(self) -> Any:
        value = self.unary()
        while True:
            if self.at("OP", "*", "/", "mod"):
                op = self.take("OP").text
                value = _binary(op, value, self.unary())
            elif self._implicit_product():  # 2(3+4), 3\sqrt{2}
                value = _binary("*", value, self.unary())
            else:
                return value

    def _implicit_product(self) -> bool:
        # "2(3+4)" is a product, "10 (100-199)" an annotation: a bracket must be glued to what precedes it
        token = self.peek()
        if token is None:
            return False
        return token.kind in ("FRAC", "SQRT") or (token.kind == "LPAR" and getattr(token, "attached", True))

    def unary(self) -> Any:
        if self.at("OP", "-"):
            self.take("OP")
            return -self.unary()
        return self.power()

    def power(self) -> Any:
        value = self.postfix()
        while True:
            if self.at("OP", "^"):
                self.take("OP")
                value = _power(value, self.unary())
            elif self.at("SUP"):
                value = _power(value, _number(self.take("SUP").text))
            else:
                return value

    def postfix(self) -> Any:
        value = self.atom()
        while self.at("PCT"):
            self.take("PCT")
            value = _binary("/", value, _number("100"))
        return value

    def atom(self) -> Any:
        token = self.peek()
        if token is None:
            raise ParseFailure("expression ends early")
        if token.kind == "NUM":
            self.pos += 1
            return _number(token.text)
        if token.kind == "LPAR":
            return self.group()
        if token.kind == "FRAC":
            self.pos += 1
            numerator = self.group()
            return _binary("/", numerator, self.group())
        if token.kind == "SQRT":
            return self.root()
        raise ParseFailure(f"unexpected {token.text!r}")

    def group(self) -> Any:
        self.take("LPAR")
        value = self.expr()
        self.take("RPAR")
        return value

    def root(self) -> Any:
        self.take("SQRT")
        degree = _number("2")
        if self.at("LPAR", "["):  # \sqrt[3]{8}
            degree = self.group()
        radicand = self.group() if self.at("LPAR") else self.power()
        return _root(radicand, degree)


def _number(text: str) -> Any:
    import sympy

    digits = text.replace(".", "")
    if len(digits) > MAX_LITERAL_DIGITS:
        raise Unverifiable(f"a number with more than {MAX_LITERAL_DIGITS} digits")
    return sympy.Rational(text) if "." in text else sympy.Integer(text)


def _binary(op: str, left: Any, right: Any) -> Any:
    if op in ("/", "mod") and right == 0:
        raise DivisionByZero("division by zero")
    if op == "+":
        value = left + right
    elif op == "-":
        value = left - right
    elif op == "*":
        value = left * right
    elif op == "/":
        value = left / right
    else:
        value = _mod(left, right)
    return _checked(value)


def _mod(left: Any, right: Any) -> Any:
    if not (getattr(left, "is_Integer", False) and getattr(right, "is_Integer", False)):
        raise Unverifiable("mod of non-integers")
    return left % right


def _bits(value: Any) -> int:
    """Size of a rational's numerator/denominator in bits (0 for non-rationals, which are small by construction)."""
    if getattr(value, "is_Rational", False):
        return max(int(value.p).bit_length(), int(value.q).bit_length())
    return 0


def _checked(value: Any) -> Any:
    if _bits(value) > MAX_BITS:
        raise Unverifiable(f"a value larger than {MAX_BITS} bits")
    return value


def _power(base: Any, exponent: Any) -> Any:
    import sympy

    if not getattr(exponent, "is_Rational", False):
        raise Unverifiable("an irrational exponent")
    if exponent.q > MAX_ROOT_DEGREE or abs(int(exponent.p)) > 100_000:
        raise Unverifiable("an exponent too large to check")
    if base == 0 and exponent < 0:
        raise DivisionByZero("zero to a negative power")
    if abs(base) != 1 and abs(int(exponent.p)) * max(_bits(base), 1) > MAX_BITS:
        raise Unverifiable(f"a power larger than {MAX_BITS} bits")
    if exponent.q != 1 and base < 0:
        if exponent.q % 2 == 0:
            raise Unverifiable("an even root of a negative number (not real)")
        # the real odd root, as people mean it: (-8)^(1/3) = -2 (sympy's principal root is complex)
        return _checked((-1) ** int(exponent.p) * sympy.Pow(-base, exponent))
    return _checked(sympy.Pow(base, exponent))


def _root(radicand: Any, degree: Any) -> Any:
    import sympy

    if not (getattr(degree, "is_Integer", False) and 2 <= int(degree) <= MAX_ROOT_DEGREE):
        raise Unverifiable("a root of unsupported degree")
    return _power(radicand, sympy.Rational(1, int(degree)))
