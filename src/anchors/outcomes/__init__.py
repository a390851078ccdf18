"""Outcomes: what a rollout's answer is, as a discrete key, for any study (docs/outcomes.md).

`parse_outcome("math" | "choice" | "regex:FILE" | "python:MOD:FN" | "judge:RUBRIC.md")` builds one; every
outcome has `grade(text, gold, trace=...)`, `forced_suffix(template)` and `grade_forced(completion, gold, ...)`.
The math outcome (the default) is exactly `anchors.traces.answers.grade`.

Layer: imports `anchors.traces`, `anchors.labels` (the endpoint client) and `anchors.models.templates` (constants
only); `anchors.methods` and the CLI import it.
"""

from anchors.outcomes.base import (
    WORDS_LEAD,
    Outcome,
    OutcomeResult,
    OutcomeStatus,
    answer_part,
    closing_part,
)
from anchors.outcomes.choice import ChoiceConfig, ChoiceOutcome
from anchors.outcomes.judge import (
    JudgeConfig,
    JudgeOutcome,
    ScriptedChat,
    judge_endpoint_from_env,
    keyword_judge,
    load_judge_config,
    rubric_classes,
)
from anchors.outcomes.math_answer import MathConfig, MathOutcome
from anchors.outcomes.python_call import PythonConfig, PythonOutcome
from anchors.outcomes.regex_classes import RegexConfig, RegexOutcome, load_regex_config
from anchors.outcomes.spec import SPEC_FORMS, outcome_settings, parse_outcome

__all__ = [
    "SPEC_FORMS", "WORDS_LEAD", "ChoiceConfig", "ChoiceOutcome", "JudgeConfig", "JudgeOutcome", "MathConfig",
    "MathOutcome", "Outcome", "OutcomeResult", "OutcomeStatus", "PythonConfig", "PythonOutcome", "RegexConfig",
    "RegexOutcome", "ScriptedChat", "answer_part", "closing_part", "judge_endpoint_from_env", "keyword_judge",
    "load_judge_config", "load_regex_config", "outcome_settings", "parse_outcome", "rubric_classes",
]
