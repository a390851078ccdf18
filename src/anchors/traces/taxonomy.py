"""Sentence-function taxonomies as data: tag names, definitions, cue phrases and colours.

The built-in taxonomy is the eight categories of *Thought Anchors* (methods.md §5) plus ``unknown``, with
definitions written for this project. Every labeller (LLM prompt, offline classifier) and every figure reads
its tags from a `Taxonomy`, so another scheme (say, for agentic traces) is one JSON file away::

    {"name": "agentic", "version": 1, "description": "...",
     "tags": [{"name": "tool_call", "definition": "...", "cues": ["calling", "run the"], "colour": "#4C78A8"},
              ...]}

``cues`` (optional) are lower-case phrases whose presence hints at the tag; the offline classifier turns
them into features. ``colour`` (optional) is a CSS hex colour for figures; missing ones are filled from a
fixed colour-blind-safe cycle. ``unknown`` is always added (never listed in the file).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.traces.jsonl import check_nesting

UNKNOWN = "unknown"
UNKNOWN_COLOUR = "#9E9E9E"
TAG_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
# Fills colours a custom taxonomy leaves out (Tableau 10 without its grey; `unknown` is always grey).
_COLOUR_CYCLE = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D")


@dataclass(frozen=True)
class TagSpec:
    """One tag: its identifier, what it means (shown to LLM labellers), cue phrases and figure colour."""

    name: str
    definition: str
    cues: tuple[str, ...] = ()
    colour: str | None = None


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of tags; `unknown` is implicit and always last."""

    name: str
    version: int
    description: str
    tags: tuple[TagSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The tag names, without `unknown`."""
        return tuple(tag.name for tag in self.tags)

    @property
    def labels(self) -> tuple[str, ...]:
        """The tag names followed by `unknown`: every value a label may take."""
        return (*self.names, UNKNOWN)

    @property
    def colours(self) -> dict[str, str]:
        """tag -> CSS hex colour, `unknown` included (grey)."""
        picked = {tag.name: tag.colour or _COLOUR_CYCLE[i % len(_COLOUR_CYCLE)] for i, tag in enumerate(self.tags)}
        return {**picked, UNKNOWN: UNKNOWN_COLOUR}

    def spec(self, name: str) -> TagSpec:
        for tag in self.tags:
            if tag.name == name:
                return tag
        raise KeyError(name)

    def fingerprint(self) -> str:
        """A short hash of the taxonomy's content (cache keys change when a definition changes)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        tags = [{"name": t.name, "definition": t.definition, "cues": list(t.cues), "colour": t.colour} for t in self.tags]
        return {"name": self.name, "version": self.version, "description": self.description, "tags": tags}

    @classmethod
    def from_dict(cls, data: Any, source: str = "taxonomy") -> Taxonomy:
        """Validate a taxonomy given as plain data; errors name the source and the offending field."""
        if not isinstance(data, dict):
            raise InputError(f"{source}: expected a JSON object with 'name' and 'tags'")
        name = _string(data, "name", source)
        raw_tags = data.get("tags")
        if not isinstance(raw_tags, list) or not raw_tags:
            raise InputError(f"{source}: field 'tags': expected a non-empty list of {{name, definition}} objects")
        tags = tuple(_tag(item, f"{source}: tags[{i}]") for i, item in enumerate(raw_tags))
        _check_unique(tags, source)
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise InputError(f"{source}: field 'version': expected an integer")
        return cls(name=name, version=version, description=str(data.get("description", "")), tags=tags)


def _string(data: dict[str, Any], field: str, source: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{source}: field '{field}': missing or not a non-empty string")
    return value.strip()


def _tag(item: Any, source: str) -> TagSpec:
    if not isinstance(item, dict):
        raise InputError(f"{source}: expected an object with 'name' and 'definition'")
    name = _string(item, "name", source)
    if not TAG_NAME_PATTERN.match(name) or name == UNKNOWN:
        raise InputError(f"{source}: field 'name': {name!r} must be lower-case letters, digits and '_' (and not 'unknown', which is implicit)")
    cues = item.get("cues", [])
    if not isinstance(cues, list) or not all(isinstance(c, str) and c.strip() for c in cues):
        raise InputError(f"{source}: field 'cues': expected a list of non-empty strings")
    colour = item.get("colour")
    if colour is not None and (not isinstance(colour, str) or not _HEX_COLOUR.match(colour)):
        raise InputError(f"{source}: field 'colour': {colour!r} is not a hex colour like '#4C78A8'")
    return TagSpec(name=name, definition=_string(item, "definition", source), cues=tuple(c.strip().lower() for c in cues), colour=colour)


def _check_unique(tags: tuple[TagSpec, ...], source: str) -> None:
    seen: set[str] = set()
    for tag in tags:
        if tag.name in seen:
            raise InputError(f"{source}: tag {tag.name!r} is listed twice")
        seen.add(tag.name)


def load_taxonomy(source: str | Path | Taxonomy | None = None) -> Taxonomy:
    """The built-in taxonomy (None or "thought-anchors"), a `Taxonomy` as is, or one read from a JSON file."""
    if source is None or isinstance(source, Taxonomy):
        return source or THOUGHT_ANCHORS
    if str(source) in BUILT_IN:
        return BUILT_IN[str(source)]
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{path}: no such taxonomy file (give a JSON file, or one of: {', '.join(BUILT_IN)})")
    try:
        text = path.read_text(encoding="utf-8")
        check_nesting(text)
        data = json.loads(text)
    except (OSError, ValueError) as exc:  # ValueError: UnicodeDecodeError, JSONDecodeError, too deep
        raise InputError(f"{path}: cannot read the taxonomy as JSON ({exc})") from None
    return Taxonomy.from_dict(data, source=str(path))


# The eight functions of Thought Anchors (methods.md §5). Definitions are this project's own wording; the
# order is the order figures and tables use; colours from a colour-blind-safe palette (Okabe-Ito plus two). Cues are short phrases typical of each function in R1-style traces.
_THOUGHT_ANCHORS_DATA: dict[str, Any] = {
    "name": "thought-anchors",
    "version": 1,
    "description": "What a sentence of a mathematical chain of thought does, after Bogdan, Macar, Nanda & Conmy (2025).",
    "tags": [
        {"name": "problem_setup", "colour": "#0072B2",
         "definition": "Reads, restates or rewrites the problem: what is given, what is asked, notation for the problem's own quantities. No new reasoning yet.",
         "cues": ["the problem", "i need to find", "we need to find", "we are given", "asking for", "i have this problem", "let me write", "let me denote"]},
        {"name": "plan_generation", "colour": "#D55E00",
         "definition": "Decides what to do next or how to attack the problem: announces a method, a sub-goal or the next step, without carrying it out.",
         "cues": ["let me", "let's", "i should", "i need to", "maybe i can", "first,", "next,", "now,", "approach", "step by step", "i'll", "we can"]},
        {"name": "fact_retrieval", "colour": "#E69F00",
         "definition": "Recalls knowledge from outside the current derivation: a definition, formula, theorem, constant or property, or a problem detail quoted for use, without computing with it.",
         "cues": ["i know that", "i remember", "recall", "the formula", "by definition", "is defined as", "theorem", "approximately", "property", "means that"]},
        {"name": "active_computation", "colour": "#009E73",
         "definition": "Carries out a step of the solution: arithmetic, algebra, substitution, counting, solving an equation or expanding an expression.",
         "cues": ["=", "times", "divided by", "multiply", "subtract", "plus", "minus", "gives", "calculating", "compute", "simplif", "substitut"]},
        {"name": "uncertainty_management", "colour": "#CC79A7",
         "definition": "Expresses doubt or confusion, notices a possible error, questions an assumption, backtracks or proposes a different approach.",
         "cues": ["wait", "hmm", "but wait", "maybe i made a mistake", "that doesn't", "doesn't make sense", "is that right", "actually", "alternatively", "or is it", "i'm confused", "not sure", "?"]},
        {"name": "result_consolidation", "colour": "#56B4E9",
         "definition": "Gathers intermediate results into a statement of what has been established so far: a summary, an intermediate conclusion, or the result about to become the answer.",
         "cues": ["so,", "therefore", "thus", "so the", "putting it together", "in total", "that means", "which gives", "so far", "to summarize", "consistent"]},
        {"name": "self_checking", "colour": "#8C564B",
         "definition": "Verifies earlier work: re-does a calculation, checks a result against a condition or another method, or confirms that a step was right.",
         "cues": ["double-check", "double check", "let me check", "let me verify", "verify", "confirm", "correct.", "that's correct", "yes,", "makes sense", "checks out", "make sure"]},
        {"name": "final_answer_emission", "colour": "#000000",
         "definition": "States the answer to the question asked (typically boxed at the end), including a sentence that gives it in words, wherever it occurs ('So the answer is 12.'), even if it is revised later.",
         "cues": ["final answer", "\\boxed", "the answer is", "so the answer", "answer:"]},
    ],
}

THOUGHT_ANCHORS = Taxonomy.from_dict(_THOUGHT_ANCHORS_DATA, source="built-in taxonomy 'thought-anchors'")
BUILT_IN: dict[str, Taxonomy] = {THOUGHT_ANCHORS.name: THOUGHT_ANCHORS}
# tag -> colour for the built-in taxonomy: what figures use unless given another taxonomy.
TAG_COLOURS: dict[str, str] = THOUGHT_ANCHORS.colours
