"""The regex-classes outcome: named regular expressions, the first listed one that matches names the outcome.

A class file is JSON, either the full form or just the `classes` object:

    {"classes": {"refuse": "\\\\b(can't|cannot|won't) help\\\\b", "comply": "\\\\bhere is\\\\b"},
     "none": "other", "rule": "first_listed", "ignore_case": true, "scope": "answer"}

rule: `first_listed` (default): the first class in file order whose pattern matches anywhere, so order the
classes by priority; `last_in_text`: the class whose match ends last in the text (a model's final word wins
over an option it considered earlier). none: the class given when nothing matches (default "other"); null makes
that a `no_answer` instead, leaving such rollouts out of every distribution. scope: `answer` (default) reads
the answer part (after `</think>`), `all` the whole text. ignore_case: default true. answer_lead: what the forced
answer writes after the closed thinking (default: the answer in words).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchors.errors import InputError
from anchors.outcomes.base import WORDS_LEAD, Outcome, OutcomeResult, OutcomeStatus, answer_part, class_token

if TYPE_CHECKING:
    from anchors.traces.records import Trace

RULES = ("first_listed", "last_in_text")
SCOPES = ("answer", "all")
_KEYS = {"classes", "none", "rule", "ignore_case", "scope", "answer_lead"}


@dataclass(frozen=True)
class RegexConfig:
    """classes: (name, pattern) pairs in priority order; the other fields as in the module docstring."""

    classes: tuple[tuple[str, str], ...]
    none_class: str | None = "other"
    rule: str = "first_listed"
    ignore_case: bool = True
    scope: str = "answer"
    think_close: str = "</think>"
    answer_lead: str = WORDS_LEAD
    source: str = ""  # the file the classes came from, for the spec string and messages

    def __post_init__(self) -> None:
        where = self.source or "regex classes"
        if not self.classes:
            raise InputError(f"{where}: no classes given")
        names = [class_token(name) for name, _ in self.classes] + ([class_token(self.none_class)] if self.none_class else [])
        if len(set(names)) != len(names) or not all(names):
            raise InputError(f"{where}: class names must be distinct and non-empty (the none class included); got {names}")
        if self.rule not in RULES:
            raise InputError(f"{where}: rule must be one of {', '.join(RULES)}; got {self.rule!r}")
        if self.scope not in SCOPES:
            raise InputError(f"{where}: scope must be one of {', '.join(SCOPES)}; got {self.scope!r}")


def load_regex_config(path: str | Path) -> RegexConfig:
    """Read a class file (see the module docstring); InputError names the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the regex class file ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of class name -> regex")
    if "classes" not in data:
        data = {"classes": data}
    return RegexConfig(**_fields(data, path), source=str(path))


def _fields(data: dict[str, Any], path: Path) -> dict[str, Any]:
    unknown = set(data) - _KEYS
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}")
    classes = data["classes"]
    if not isinstance(classes, dict) or not all(isinstance(v, str) for v in classes.values()):
        raise InputError(f"{path}: 'classes' must be an object of class name -> regex string")
    fields: dict[str, Any] = {"classes": tuple(classes.items())}
    if "none" in data:
        fields["none_class"] = data["none"]
    for key in ("rule", "ignore_case", "scope", "answer_lead"):
        if key in data:
            fields[key] = data[key]
    return fields


class RegexOutcome(Outcome):
    """See the module docstring."""

    def __init__(self, config: RegexConfig) -> None:
        self.config = config
        self.spec = f"regex:{config.source}" if config.source else "regex"
        self.answer_lead = config.answer_lead
        flags = re.IGNORECASE if config.ignore_case else 0
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in config.classes:
            try:
                self._patterns.append((name, re.compile(pattern, flags)))
            except re.error as exc:
                where = config.source or "regex classes"
                raise InputError(f"{where}: class {name!r}: bad regex {pattern!r} ({exc})") from None

    @property
    def classes(self) -> tuple[str, ...]:
        names = tuple(name for name, _ in self.config.classes)
        return names + ((self.config.none_class,) if self.config.none_class else ())

    def grade(self, text: str, gold: str | None = None, *, trace: Trace | None = None) -> OutcomeResult:
        target = self._target(gold)
        if gold is not None and gold.strip() and target is None:
            return OutcomeResult(None, None, OutcomeStatus.ERROR,
                                 detail=f"the gold answer {gold!r} is not one of the classes {', '.join(self.classes)}")
        read = text if self.config.scope == "all" else answer_part(text, self.config.think_close)
        key, matched = self._classify(read)
        if key is None:
            return OutcomeResult(None, None, OutcomeStatus.NO_ANSWER)
        return OutcomeResult(key, None if target is None else key == target, OutcomeStatus.OK, answer=matched)

    def _classify(self, text: str) -> tuple[str | None, str | None]:
        hits = [(name, match) for name, pattern in self._patterns if (match := _last_match(pattern, text)) is not None]
        if not hits:
            return self.config.none_class, None
        if self.config.rule == "last_in_text":  # ties (same end): the earlier-listed class
            name, match = max(hits, key=lambda hit: hit[1].end())
        else:
            name, match = hits[0]
        return name, match.group(0)

    def _target(self, gold: str | None) -> str | None:
        if gold is None or not gold.strip():
            return None
        return {class_token(name): name for name in self.classes}.get(class_token(gold))


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = list(pattern.finditer(text))
    return found[-1] if found else None
