"""Options several commands share for choosing what is measured: `--outcome` and `--sentences`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from anchors.errors import InputError

OutcomeOption = Annotated[str, typer.Option(
    "--outcome", help="What a rollout's answer is: math (the boxed answer, default), choice (a multiple-choice letter), "
                      "regex:FILE.json (named regular expressions), python:MODULE:FUNCTION or python:FILE.py:FUNCTION (a "
                      "grader run in a sandboxed child, e.g. unit tests), judge:RUBRIC.md (an LLM judge at "
                      "$ANCHORS_JUDGE_BASE_URL). Accuracy is the share of the trace's gold_answer (the target class).")]
SentencesOption = Annotated[str | None, typer.Option(
    "--sentences", help="Only these sentence positions, e.g. '3,5-9' (0-based; default: all). Scoring sentence i needs "
                        "the prefixes before and after it, so both are sampled: a chosen sentence gets the numbers a "
                        "full run gives it; positions past a trace's end are skipped for that trace.")]


def parse_indices(text: str | None, option: str) -> tuple[int, ...] | None:
    """'0,2,5-9' -> (0, 2, 5, 6, 7, 8, 9); None -> None."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InputError(f"{option} takes indices like '0,2,5-9', not {text!r}") from None
    if not out:
        raise InputError(f"{option}: no indices in {text!r}")
    return tuple(out)


def command_outcome(spec: str, *, mode: str = "default", template: Any = None, answer_method: str | None = None) -> Any:
    """The outcome `--outcome` names, checked before any work (a grader that does not load, no judge endpoint)."""
    from anchors.outcomes import parse_outcome

    close = template.think_close if template is not None else None
    outcome = parse_outcome(spec, mode=mode, answer_method=answer_method, think_close=close)
    outcome.check()
    return outcome


def math_only(spec: str, what: str) -> None:
    """The authors' data and a few methods know math answers only."""
    if spec.strip() != "math":
        raise InputError(f"--outcome {spec}: {what} reads math answers only; leave --outcome at math")
