"""`--outcome` spec strings -> an `Outcome`: math | choice[:LETTERS] | regex:FILE | python:MOD:FN | judge:RUBRIC.md."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

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
    python_timeout_s: float = 10.0, judge_endpoint: EndpointConfig | None = None, think_close: str | None = None,
) -> Outcome:
    """Build the outcome a spec string names; InputError names the spec and the accepted forms.

    mode / answer_method configure the math outcome (the command's `--mode`, `--answer-method`);
    python_timeout_s the python outcome's per-call limit; judge_endpoint the judge's endpoint (default: from
    $ANCHORS_JUDGE_BASE_URL / $ANCHORS_JUDGE_MODEL); think_close the template's closing tag, where the answer
    part starts (default `</think>`). Files are read now; no process is started and nothing is requested (call
    `outcome.check()` for that).
    """
    outcome = _parse(spec, mode, answer_method, python_timeout_s, judge_endpoint)
    if think_close is not None and hasattr(outcome.config, "think_close"):  # type: ignore[attr-defined]
        outcome.config = dataclasses.replace(outcome.config, think_close=think_close)  # type: ignore[attr-defined]
    return outcome


def _parse(spec: str, mode: str, answer_method: str | None, python_timeout_s: float,
           judge_endpoint: EndpointConfig | None) -> Outcome:
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


_CLASSES: dict[str, type[Outcome]] = {"math": MathOutcome, "choice": ChoiceOutcome, "regex": RegexOutcome,
                                      "python": PythonOutcome, "judge": JudgeOutcome}


def forced_tokens(spec: str) -> int:
    """The default forced-answer budget of the outcome a spec names (without reading its file)."""
    kind = spec.strip().partition(":")[0]
    if kind not in _CLASSES:
        raise InputError(f"unknown outcome {spec!r}; use one of: {SPEC_FORMS}")
    return _CLASSES[kind].forced_tokens


def outcome_settings(outcome: Outcome) -> dict[str, Any]:
    """What a results folder records about an outcome: its spec and the sha256 of the file that defines it (the
    regex class file, the rubric, the grader module), so a changed rubric is a settings conflict, not a silent
    mix of verdicts. None where no file defines it (math, choice, an installed module not found as a file)."""
    return {"outcome": outcome.spec, "outcome_sha256": outcome_file_hash(outcome)}


def outcome_file_hash(outcome: Outcome) -> str | None:
    config: Any = getattr(outcome, "config", None)
    if isinstance(outcome, JudgeOutcome):
        return hashlib.sha256(outcome.config.rubric.encode("utf-8")).hexdigest()
    path: Path | None = None
    if isinstance(outcome, RegexOutcome) and config.source:
        path = Path(config.source)
    elif isinstance(outcome, PythonOutcome):
        path = module_file(config.module, config.paths)
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_file(module: str, paths: tuple[str, ...] = ()) -> Path | None:
    """The source file of a grader module, found without importing anything (its code runs only in the
    sandbox): a `.py` path as given, else `a/b.py` or `a/b/__init__.py` under the working directory, `paths` or
    sys.path."""
    if module.endswith(".py"):
        return Path(module)
    relative = Path(*module.split("."))
    for root in (Path.cwd(), *map(Path, paths), *(Path(p) for p in sys.path if p)):
        for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
