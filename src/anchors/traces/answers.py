"""Find the final answer in a reasoning trace, give it a category key, and grade it against a gold answer.

Two modes (methods.md §3):

* ``mode="paper"`` reproduces the Thought Anchors authors (github interp-reasoning/thought-anchors,
  ``utils.py``): the **first** non-empty ``\\boxed{...}`` of the text (an unclosed box runs to the end
  of the text, as in their extractor), their LaTeX normalisation as the answer's key, then string
  equality of the keys, else sympy LaTeX equivalence (``parse_latex(a).equals(parse_latex(b))``),
  where any exception means "not equal".
* ``mode="default"`` takes the **last** boxed answer (a model's final answer comes last; the first
  box is often an intermediate guess inside the thinking) and decides equivalence with math-verify.

In both modes a cheap in-process check runs first (equal keys, or two different integers) and only
the rest goes to the symbolic comparison, which runs in a worker process with a hard wall-clock
timeout (see `anchors.traces.grading`). `grade` results are cached by content hash.

Typical use::

    g = grade(rollout_text, gold="\\frac{1}{2}")
    g.correct, g.key, g.status
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from anchors.errors import InputError
from anchors.traces import grade_cache, grading
from anchors.traces.grading import GradeStatus, shutdown_workers
from anchors.types import Mode

__all__ = [  # noqa: RUF022 - grouped by role, not sorted
    "Grade", "GradeStatus", "grade", "answers_equal", "answer_key", "extract_answer", "boxed_answers",
    "METHODS", "DEFAULT_METHOD", "clear_grade_cache", "shutdown_workers",
]  # fmt: skip

MODES: tuple[str, ...] = ("default", "paper")
METHODS: tuple[str, ...] = ("boxed_first", "boxed_last", "answer_is", "last_number", "choice", "auto", "paper")
# The extractor each mode uses when the caller names none.
DEFAULT_METHOD: dict[str, str] = {"default": "boxed_last", "paper": "paper"}


@dataclass(frozen=True)
class Grade:
    """One graded text.

    answer: the extracted answer string (None if none was found).
    key: the normalised answer, the category used for answer distributions.
    correct: the verdict against the gold answer; None without a gold answer or unless status is ok.
    status: ok, no_answer, timeout or parse_error.
    """

    answer: str | None
    key: str | None
    correct: bool | None
    status: GradeStatus


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

_BOXED_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PAPER_BOXED_OPEN = re.compile(r"\\boxed\{")  # the authors' pattern: no \fbox, no space


def _matching_brace(text: str, open_at: int) -> int | None:
    """Index of the `}` closing the `{` at `open_at`, or None if the text ends first."""
    depth = 0
    for index in range(open_at, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def boxed_answers(text: str) -> list[str]:
    """Contents of every closed, non-empty `\\boxed{...}` / `\\fbox{...}`, in order, stripped."""
    found = []
    for match in _BOXED_OPEN.finditer(text):
        close = _matching_brace(text, match.end() - 1)
        content = _unwrap_boxed(text[match.end() : close].strip()) if close is not None else ""
        if content:
            found.append(content)
    return found


def _unwrap_boxed(content: str) -> str:
    """`\\boxed{\\boxed{5}}` -> `5`: a box that only holds another box."""
    match = _BOXED_OPEN.match(content)
    if match and _matching_brace(content, match.end() - 1) == len(content) - 1:
        return _unwrap_boxed(content[match.end() : -1].strip())
    return content


def _paper_boxed_answers(text: str) -> list[str]:
    """The authors' extractor: unclosed boxes run to the end of the text; contents are not stripped."""
    found = []
    for match in _PAPER_BOXED_OPEN.finditer(text):
        close = _matching_brace(text, match.end() - 1)
        content = text[match.end() : close if close is not None else len(text)]
        if content:
            found.append(content)
    return found


def _first(items: list[str]) -> str | None:
    return items[0] if items else None


def _last(items: list[str]) -> str | None:
    return items[-1] if items else None


# "The answer is X", "**Final Answer:** X", "final answer: X", "Answer = X" (X runs to the line end).
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|answer)[\s*]*(?:is(?![\w'])|:|=)[\s*:]*(?P<rest>[^\n]*)", re.IGNORECASE
)
_DELIMITERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _peel(text: str) -> str:
    """Strip whitespace, ** bold, a final period and $...$, \\(...\\), \\[...\\] around an answer."""
    for _ in range(3):  # markup nests in any order: "**$42$.**"
        text = text.strip().strip("*").strip().rstrip(".").strip()
        for left, right in _DELIMITERS:
            if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
                text = text[len(left) : len(text) - len(right)]
    return text.strip()


def _clean_inline(rest: str) -> str | None:
    """Trim an inline answer: a box inside wins; else cut at the sentence end and peel the markup."""
    boxed = boxed_answers(rest)
    if boxed:
        return boxed[0]
    return _peel(re.split(r"\.\s", rest, maxsplit=1)[0]) or None


def _answer_is(text: str) -> str | None:
    """The last "the answer is X" / "final answer: X" phrase with a non-empty X."""
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        answer = _clean_inline(match.group("rest"))
        if answer:
            return answer
    return None


_NUMBER = re.compile(
    r"\\[dt]?frac\{(?P<num>-?\d+)\}\{(?P<den>\d+)\}"
    r"|(?<![\w.])(?P<plain>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?)(?!\d)"
)


def _last_number(text: str) -> str | None:
    """The last number: -3, 1,234 (returned as 1234), 3.5, 1/2, or \\frac{1}{2} (returned as 1/2)."""
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    if last.group("plain") is not None:
        return last.group("plain").replace(",", "")
    return f"{last.group('num')}/{last.group('den')}"


_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
_LETTER_ONLY = re.compile(r"\(?([A-Ea-e])\)?")
_LETTER_LEADING = re.compile(r"\(?([A-E])\)?(?=[\s.:,;]|$)")
_LETTER_IN_PARENS = re.compile(r"\(([A-E])\)")


def _as_letter(candidate: str, *, leading: bool = False) -> str | None:
    """`B`, `(b)`, `\\text{B}`, `**C.**` -> the upper-case letter; `leading` also accepts `C. 42`."""
    cleaned = _WRAPPERS.sub(r"\1", candidate).strip().strip("*").strip().rstrip(".").strip()
    match = _LETTER_ONLY.fullmatch(cleaned) or (_LETTER_LEADING.match(cleaned) if leading else None)
    return match.group(1).upper() if match else None


def _choice(text: str) -> str | None:
    """A multiple-choice letter A-E: a boxed letter, else "answer: C", else the last "(B)"."""
    for candidate in reversed(boxed_answers(text)):
        letter = _as_letter(candidate)
        if letter:
            return letter
    stated = _answer_is(text)
    letter = _as_letter(stated, leading=True) if stated else None
    if letter:
        return letter
    return _last([m.group(1) for m in _LETTER_IN_PARENS.finditer(text)])


def _auto(text: str) -> str | None:
    return _last(boxed_answers(text)) or _answer_is(text) or _last_number(text)


_EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "boxed_first": lambda text: _first(boxed_answers(text)),
    "boxed_last": lambda text: _last(boxed_answers(text)),
    "answer_is": _answer_is,
    "last_number": _last_number,
    "choice": _choice,
    "auto": _auto,
    "paper": lambda text: _first(_paper_boxed_answers(text)),
}


def extract_answer(text: str, method: str = "auto") -> str | None:
    """The raw answer string found in `text` by `method` (one of `METHODS`), or None.

    boxed_first / boxed_last: the first / last non-empty brace-matched `\\boxed{}` (or `\\fbox{}`);
    answer_is: "the answer is X", "**Final Answer:** X", ...; last_number: the last number;
    choice: a letter A-E; auto: boxed_last, then answer_is, then last_number;
    paper: the authors' extractor (first `\\boxed{`, unclosed boxes included, not stripped).
    """
    if not isinstance(text, str):
        raise InputError(f"extract_answer needs a string, got {type(text).__name__}")
    return _EXTRACTORS[_check_method(method)](text)


# ---------------------------------------------------------------------------------------------
# Normalisation (the answer's key)
# ---------------------------------------------------------------------------------------------

# The authors' `normalize_latex`, step by step, after strip() and lower(). Order matters: braces
# are dropped (one level) before the \text{...} rules run, so "\text{cm}" ends up as "cm" through
# the final bare "\text" removal, and "1,5" becomes the decimal "1.5".
_Replacement = Union[str, Callable[[re.Match[str]], str]]  # a re.sub replacement

_PAPER_STEPS: tuple[tuple[str, _Replacement], ...] = (
    (r"dfrac", "frac"),
    (r"tfrac", "frac"),
    (r"\s+", ""),
    (r"\\%", ""),
    (r"\{,\}", ""),
    (r"\\times", "*"),
    (r"\\cdot", "*"),
    (r"(\d+)[.,](\d+)", r"\1.\2"),
    (r"\{([^{}]+)\}", r"\1"),
    (r"\\pi", "pi"),
    (r"\\text\{([^{}]+)\}", r"\1"),
    (r"\\mathrm\{([^{}]+)\}", r"\1"),
    (r"([a-z]+)\\+\s*(\d+)", r"\1\2"),
    (r"\\text", ""),
)

# Default mode: only rewrites that math-verify also treats as the same value, so that equal keys
# can be graded equal without asking it.
_DEFAULT_STEPS: tuple[tuple[str, _Replacement], ...] = (
    (r"\\[dt]frac", r"\\frac"),
    (r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])", ""),
    (r"\\[!,;: ]|\\q?quad(?![a-zA-Z])", ""),  # spacing commands
    (r"\^\s*\{?\\circ\}?", ""),  # degrees
    (r"\\?%", ""),  # math-verify also treats 10\% and 10 as equal
    (r"\\\$", ""),  # a currency sign
    (r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1"),
    (r"\{,\}", ","),  # 1{,}234
    # 1,234,567 -> 1234567, before spaces go: "(1, 234)" is a pair, not a thousand-something.
    (r"(?<![\d.])\d{1,3}(?:,\d{3})+(?!\d)", lambda m: m.group().replace(",", "")),
    (r"\s+", " "),
    (r"(?<![a-zA-Z]) | (?![a-zA-Z])", ""),  # keep only spaces that separate letters ("\cdot x")
    (r"(\d\.\d*?)0+(?!\d)", r"\1"),  # 6.170 -> 6.17, 5.0 -> 5.
    (r"(\d)\.(?!\d)", r"\1"),  # 5. -> 5 (also a sentence's final period)
)


def _apply(steps: tuple[tuple[str, _Replacement], ...], text: str) -> str:
    for pattern, replacement in steps:
        text = re.sub(pattern, replacement, text)
    return text


def answer_key(answer: str | None, mode: Mode = "default") -> str | None:
    """The normalised answer: the category key for answer distributions (None stays None).

    paper: the authors' normalisation (lower-cased, whitespace, `\\%`, `\\text{}` and one level of
    braces removed, dfrac/tfrac -> frac, `\\times`/`\\cdot` -> `*`, ...).
    default: value-preserving clean-up (delimiters, `\\left`/`\\right`, spacing, units' `\\text{}`,
    thousands separators, trailing zeros); case is kept.
    """
    if answer is None:
        return None
    if _check_mode(mode) == "paper":
        return _apply(_PAPER_STEPS, answer.strip().lower())
    return _apply(_DEFAULT_STEPS, _peel(answer))


# ---------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"-?\d+")


def _decide_in_process(answer: str, gold: str, mode: str) -> bool | None:
    """Verdicts that need no symbolic work: equal keys, or two integers (None: ask the worker)."""
    answer_norm, gold_norm = answer_key(answer, mode), answer_key(gold, mode)  # type: ignore[arg-type]
    if answer_norm == gold_norm:
        return True
    if answer_norm and gold_norm and _INTEGER.fullmatch(answer_norm) and _INTEGER.fullmatch(gold_norm):
        if _canonical_integer(answer_norm) != _canonical_integer(gold_norm):
            return False
        # "090" vs "90": math-verify says equal; the paper's sympy step decides in paper mode.
        return True if mode == "default" else None
    return None


def _canonical_integer(digits: str) -> str:
    """'-007' -> '-7', '-0' -> '0': compared as text, since int() refuses numbers over 4,300 digits."""
    negative, magnitude = digits.startswith("-"), digits.lstrip("-").lstrip("0") or "0"
    return "-" + magnitude if negative and magnitude != "0" else magnitude


def answers_equal(
    answer: str, gold: str, *, mode: Mode = "default", timeout: float | None = 5.0
) -> tuple[bool | None, GradeStatus]:
    """Is the extracted `answer` equivalent to the `gold` answer? -> (verdict, status).

    The verdict is None unless status is ok. The symbolic part runs in a worker process that is
    killed after `timeout` seconds (None: no limit), which works from any thread. The order
    matters: math-verify treats its first argument as the gold answer.
    """
    mode = _check_mode(mode)
    _check_timeout(timeout)
    decided = _decide_in_process(answer, gold, mode)
    if decided is not None:
        return decided, GradeStatus.OK
    return grading.compare_symbolic(mode, answer, gold, timeout)


# ---------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------


def grade(
    text: str,
    gold: str | None = None,
    *,
    mode: Mode = "default",
    method: str | None = None,
    timeout: float | None = 5.0,
    cache: bool = True,
) -> Grade:
    """Extract the answer from `text`, key it, and (given `gold`, the reference answer) grade it.

    `method` defaults to the mode's extractor (`DEFAULT_METHOD`). Results are cached by the
    sha256 of (mode, method, text, gold) in memory and in a SQLite file under
    `cache_dir("grading")`; `cache=False` skips both, `ANCHORS_NO_CACHE=1` skips the file.
    Timeouts are never cached. An empty `gold` counts as no gold answer.
    """
    if not isinstance(text, str):
        raise InputError(f"grade needs the text as a string, got {type(text).__name__}")
    mode = _check_mode(mode)
    method = _check_method(method or DEFAULT_METHOD[mode])
    _check_timeout(timeout)
    gold = _clean_gold(gold)
    digest = grade_cache.cache_digest(mode, method, text, gold)
    persistent = cache and grade_cache.persistent_cache_enabled()
    row = grade_cache.RESULTS.get(digest, persistent) if cache else None
    if row is not None:
        return Grade(row[0], row[1], row[2], GradeStatus(row[3]))
    result = _grade_uncached(text, gold, mode, method, timeout)
    if cache and result.status is not GradeStatus.TIMEOUT:
        grade_cache.RESULTS.put(digest, (result.answer, result.key, result.correct, result.status.value), persistent)
    return result


def _grade_uncached(text: str, gold: str | None, mode: str, method: str, timeout: float | None) -> Grade:
    answer = extract_answer(text, method)
    if answer is None:
        return Grade(None, None, None, GradeStatus.NO_ANSWER)
    key = answer_key(answer, mode)  # type: ignore[arg-type]
    if gold is None:
        return Grade(answer, key, None, GradeStatus.OK)
    if method == "choice":  # letters compare as letters, never symbolically
        return Grade(answer, key, answer == (_as_letter(gold, leading=True) or gold.upper()), GradeStatus.OK)
    correct, status = answers_equal(answer, gold, mode=mode, timeout=timeout)  # type: ignore[arg-type]
    return Grade(answer, key, correct if status is GradeStatus.OK else None, status)


def clear_grade_cache() -> None:
    """Forget the in-process grade cache (the SQLite file stays; delete it to drop it too)."""
    grade_cache.RESULTS.clear_memory()


def _clean_gold(gold: object) -> str | None:
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        gold = str(gold)
    if gold is not None and not isinstance(gold, str):
        raise InputError(f"gold must be the reference answer as a string, got {type(gold).__name__}")
    return (gold.strip() or None) if gold is not None else None


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def _check_method(method: str) -> str:
    if method not in _EXTRACTORS:
        raise InputError(f"answer extraction method must be one of {', '.join(METHODS)}; got {method!r}")
    return method


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise InputError(f"timeout must be a positive number of seconds or None; got {timeout!r}")
