"""`--outcome` spec strings -> an `Outcome`: math | choice[:LETTERS] | regex:FILE | python:MOD:FN | judge:RUBRIC.md."""

from __future__ import annotations

from anchors.errors import InputError
from anchors.labels.endpoint import EndpointConfig
from anchors.outcomes.base import Outcome
from anchors.outcomes.choice import ChoiceConfig, ChoiceOutcome
from anchors.outcomes.judge import JudgeOutcome, judge_endpoint_from_env, load_judge_config
from anchors.outcomes.math_answer import MathConfig, MathOutcome
from anchors.outcomes.python_call import PythonConfig, PythonOutcome
from anchors.outcomes.regex_classes import RegexOutcome, load_regex_config

SPEC_FORMS = "math, choice, choice:LETTERS, regex:FILE.json, python:MODULE:FUNCTION (or python:FILE.py:FUNCTION), judge:RUBRIC.md"


def parse_outcome(
    spec: str = "math", *, mode: str = "default", answer_method: str | None = None,
    python_timeout_s: float = 10.0, judge_endpoint: EndpointConfig | None = None,
) -> Outcome:
    """Build the outcome a spec string names; InputError names the spec and the accepted forms.

    mode / answer_method configure the math outcome (the command's `--mode`, `--answer-method`);
    python_timeout_s the python outcome's per-call limit; judge_endpoint the judge's endpoint (default: from
    $ANCHORS_JUDGE_BASE_URL / $ANCHORS_JUDGE_MODEL). Files are read now; no process is started and nothing is
    requested (call `outcome.check()` for that).
    """
    kind, _, rest = spec.strip().partition(":")
    if kind == "math" and not rest:
        return MathOutcome(MathConfig(mode=mode, method=answer_method))
    if kind == "choice":
        return ChoiceOutcome(ChoiceConfig(letters=rest) if rest else ChoiceConfig())
    if kind == "regex" and rest:
        return RegexOutcome(load_regex_config(rest))
    if kind == "python" and rest:
        module, _, function = rest.rpartition(":")  # the last colon: a Windows path may hold one
        if module and function:
            return PythonOutcome(PythonConfig(module=module, function=function, timeout_s=python_timeout_s))
    if kind == "judge" and rest:
        return JudgeOutcome(load_judge_config(rest, endpoint=judge_endpoint or judge_endpoint_from_env()))
    raise InputError(f"unknown outcome {spec!r}; use one of: {SPEC_FORMS}")
