"""Verdicts on one arithmetic claim: exact comparison with sympy, plus the usual ways of writing a true step
that read false literally (rounded decimals, ≈, running totals, percent notation, rounded intermediate
values, whole-number quotients). See `arith_claims` for the rules."""

from __future__ import annotations

from typing import Any, Literal

from anchors.arithmetic.evaluate import ArithError, DivisionByZero, ParseFailure, Unverifiable, evaluate
from anchors.arithmetic.scan import Token

Verdict = Literal["valid", "invalid", "unchecked"]


def verdict(
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
