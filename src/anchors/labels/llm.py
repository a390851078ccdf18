"""The LLM labeller: one chat request per trace (per batch for long traces), JSON out, repaired or retried.

For each batch the model sees the taxonomy's definitions, the problem, a few earlier sentences for context and
the numbered sentences to label, and must answer `{"sentences": [{"index", "function_tags", "depends_on"}]}`.
A reply is never trusted: JSON is dug out of prose or code fences, items are matched to sentences by index,
tags are mapped onto the taxonomy ("Active Computation" -> active_computation) or dropped, dependencies that
do not point to an earlier sentence are dropped. Sentences still missing are asked for again (with the reason);
whatever is still missing after that is tagged `unknown`, with a `LabelWarning`. Results are cached under
`cache/labels/`, keyed by the sentences, the problem, the model, the endpoint, the taxonomy and PROMPT_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from anchors.labels.endpoint import ChatClient, EndpointConfig
from anchors.labels.result import SentenceLabels, warn
from anchors.paths import read_cached, write_cached
from anchors.traces.taxonomy import UNKNOWN, Taxonomy, load_taxonomy

# Bump when the prompt or the reply handling changes: cached labels from another version are not reused.
PROMPT_VERSION = "tags-prompt-1"
CACHE_SCHEMA_VERSION = 1
BASE_URL_ENV, MODEL_ENV = "ANCHORS_LABEL_BASE_URL", "ANCHORS_LABEL_MODEL"
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class LLMConfig:
    """An LLM labeller: the endpoint, batching, and how hard to try before giving up on a sentence."""

    endpoint: EndpointConfig
    batch_size: int = 60  # sentences labelled per request; long traces are split into batches
    context_sentences: int = 4  # earlier sentences shown (not labelled) at the start of each later batch
    repair_attempts: int = 2  # extra requests for sentences a reply left out or garbled
    tokens_per_sentence: int = 40  # max_tokens = this x sentences + 200 (a reply per sentence is ~25 tokens)
    use_cache: bool = True

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMConfig | None:
        """From $ANCHORS_LABEL_BASE_URL (and $ANCHORS_LABEL_MODEL); None when no endpoint is configured."""
        base_url = os.environ.get(BASE_URL_ENV, "").strip()
        if not base_url:
            return None
        endpoint = EndpointConfig(base_url=base_url, model=os.environ.get(MODEL_ENV, "").strip() or "default")
        return cls(endpoint=endpoint, **overrides)


class _ReplyItem(BaseModel):
    """One sentence's entry in a reply, after lenient key mapping."""

    model_config = ConfigDict(extra="ignore")

    index: int
    function_tags: list[str]
    depends_on: list[int] = []


class CachedLabels(BaseModel):
    """What is stored under cache/labels/<key>.json."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = CACHE_SCHEMA_VERSION
    prompt_version: str
    model: str
    taxonomy: str
    tags: list[list[str]]
    depends_on: list[list[int]]
    warnings: list[str] = []


@dataclass
class _Batch:
    """Labels gathered for one batch, and the problems met on the way."""

    indices: list[int]
    found: dict[int, tuple[tuple[str, ...], tuple[int, ...]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[int]:
        return [i for i in self.indices if i not in self.found]


class LLMLabeller:
    """Labels traces through an OpenAI-compatible chat endpoint (see the module docstring)."""

    def __init__(self, config: LLMConfig, taxonomy: Taxonomy | str | Path | None = None) -> None:
        self.config, self.taxonomy = config, load_taxonomy(taxonomy)
        self.client = ChatClient(config.endpoint)

    @property
    def name(self) -> str:
        return f"llm:{self.config.endpoint.model}@{PROMPT_VERSION}"

    def label(self, sentences: Sequence[str], problem: str | None = None, trace_id: str | None = None) -> SentenceLabels:
        texts = [str(s) for s in sentences]
        key = self._cache_key(texts, problem)
        record = self._load_cache(key, len(texts))
        if record is None:
            record, complete = self._label_uncached(texts, problem)
            if complete:
                self._store_cache(key, record)
        where = f"trace {trace_id!r}" if trace_id else "trace"
        messages = tuple(f"{where}: {message}" for message in record.warnings)
        for message in messages:  # repairs are reported again on a cache hit: the labels still carry them
            warn(message)
        return SentenceLabels(trace_id=trace_id, sentences=tuple(texts), all_tags=tuple(tuple(t) for t in record.tags),
                              taxonomy=self.taxonomy, labeller=self.name,
                              depends_on=tuple(tuple(d) for d in record.depends_on), warnings=messages)

    def _label_uncached(self, texts: list[str], problem: str | None) -> tuple[CachedLabels, bool]:
        found: dict[int, tuple[tuple[str, ...], tuple[int, ...]]] = {}
        messages: list[str] = []
        for start in range(0, len(texts), self.config.batch_size):
            batch = self._run_batch(texts, problem, list(range(start, min(start + self.config.batch_size, len(texts)))))
            found.update(batch.found)
            messages += batch.problems
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            messages.append(f"no usable label for {len(missing)} sentence(s) {_ranges(missing)}: tagged '{UNKNOWN}'")
        tags = [list(found[i][0]) if i in found else [UNKNOWN] for i in range(len(texts))]
        deps = [list(found[i][1]) if i in found else [] for i in range(len(texts))]
        record = CachedLabels(prompt_version=PROMPT_VERSION, model=self.config.endpoint.model, taxonomy=self.taxonomy.name,
                              tags=tags, depends_on=deps, warnings=messages)
        return record, not missing

    def _run_batch(self, texts: list[str], problem: str | None, indices: list[int]) -> _Batch:
        batch = _Batch(indices)
        conversation = [{"role": "system", "content": system_prompt(self.taxonomy)},
                        {"role": "user", "content": user_prompt(texts, problem, indices, self.config.context_sentences)}]
        for attempt in range(1 + self.config.repair_attempts):
            todo = batch.missing
            reply = self.client.chat(conversation, reply_schema(self.taxonomy, todo),
                                     max_tokens=self.config.tokens_per_sentence * len(todo) + 200)
            reason = parse_reply(reply, todo, self.taxonomy, batch)
            if not batch.missing:
                break
            if attempt < self.config.repair_attempts:
                conversation += [{"role": "assistant", "content": reply[:4000]},
                                 {"role": "user", "content": repair_prompt(reason, batch.missing)}]
        return batch

    def _cache_key(self, texts: list[str], problem: str | None) -> str:
        endpoint = self.config.endpoint
        parts = [PROMPT_VERSION, endpoint.model, endpoint.base_url.rstrip("/"), self.taxonomy.fingerprint(), problem,
                 texts, self.config.batch_size, self.config.context_sentences]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _load_cache(self, key: str, count: int) -> CachedLabels | None:
        record = read_cached("labels", key, CachedLabels) if self.config.use_cache else None
        return record if record is not None and len(record.tags) == len(record.depends_on) == count else None

    def _store_cache(self, key: str, record: CachedLabels) -> None:
        if self.config.use_cache:
            write_cached("labels", key, record)


# --- prompts -------------------------------------------------------------------------------------------------

def system_prompt(taxonomy: Taxonomy) -> str:
    definitions = "\n".join(f"- {tag.name}: {tag.definition}" for tag in taxonomy.tags)
    return (
        "You annotate reasoning traces: the numbered sentences a model wrote while thinking about a problem.\n"
        "For every sentence you are asked about, decide what it does in the reasoning, using these tags:\n"
        f"{definitions}\n\n"
        "For each sentence give `function_tags` (one or more of the tags above, the most fitting first) and "
        "`depends_on` (indices of earlier sentences whose results or ideas this sentence directly uses; [] if none; "
        "be conservative).\n"
        "Answer with a single JSON object and nothing else, in this form:\n"
        '{"sentences": [{"index": 0, "function_tags": ["problem_setup"], "depends_on": []}, '
        '{"index": 1, "function_tags": ["plan_generation"], "depends_on": [0]}]}'
    )


def user_prompt(texts: Sequence[str], problem: str | None, indices: Sequence[int], context: int) -> str:
    parts = [f"PROBLEM:\n{problem.strip()}\n"] if problem else []
    first = indices[0]
    if first > 0 and context > 0:
        shown = range(max(0, first - context), first)
        parts.append("EARLIER SENTENCES (context only, do not label):\n" + "\n".join(f"[{i}] {texts[i]}" for i in shown) + "\n")
    parts.append("SENTENCES TO LABEL:\n" + "\n".join(f"[{i}] {texts[i]}" for i in indices))
    parts.append(f"\nLabel each of the {len(indices)} sentences [{indices[0]}] to [{indices[-1]}], one entry per sentence.")
    return "\n".join(parts)


def repair_prompt(reason: str, missing: Sequence[int]) -> str:
    return (f"Your reply could not be used: {reason}. Answer again with only the JSON object, one entry for each of "
            f"these sentence indices: {', '.join(map(str, missing))}.")


def reply_schema(taxonomy: Taxonomy, indices: Sequence[int]) -> dict[str, Any]:
    """The JSON schema the reply must follow (sent as the structured-output format where supported)."""
    item = {"type": "object", "additionalProperties": False, "required": ["index", "function_tags", "depends_on"],
            "properties": {"index": {"type": "integer", "enum": list(indices)},
                           "function_tags": {"type": "array", "minItems": 1, "maxItems": 3,
                                             "items": {"type": "string", "enum": list(taxonomy.names)}},
                           "depends_on": {"type": "array", "maxItems": 8, "items": {"type": "integer"}}}}
    # minItems: grammar-constrained servers otherwise accept '{"sentences": []}' from a weak model.
    entries = {"type": "array", "items": item, "minItems": len(indices), "maxItems": len(indices)}
    return {"type": "object", "additionalProperties": False, "required": ["sentences"], "properties": {"sentences": entries}}


# --- reply parsing and repair ----------------------------------------------------------------------------------

def parse_reply(reply: str, expected: Sequence[int], taxonomy: Taxonomy, batch: _Batch) -> str:
    """Add every usable entry of `reply` for the `expected` indices to `batch`; return why the rest failed ('' if none)."""
    data = extract_json(reply)
    if data is None:
        snippet = " ".join(reply.split())[:60]
        return _problem(batch, f"the reply was not JSON ({snippet!r}…)" if snippet else "the reply was empty")
    items = reply_items(data, expected)
    if items is None:
        return _problem(batch, "the JSON had no list of sentence entries")
    expected_set, reasons = set(expected), []
    for item in items:
        reasons += _accept(item, expected_set, taxonomy, batch)
    missing = [i for i in expected if i not in batch.found]
    if missing:
        reasons.append(_problem(batch, f"{len(missing)} sentence(s) missing or unusable in the reply {_ranges(missing)}"))
    return "; ".join(reasons)


def _accept(item: Any, expected: set[int], taxonomy: Taxonomy, batch: _Batch) -> list[str]:
    try:
        entry = _ReplyItem.model_validate(_lenient_item(item))
    except ValidationError:
        return []  # counted below as a missing sentence
    if entry.index not in expected or entry.index in batch.found:
        return []
    tags = [normalise_tag(t, taxonomy) for t in entry.function_tags]
    unknown = [raw for raw, tag in zip(entry.function_tags, tags) if tag is None]
    kept = tuple(dict.fromkeys(t for t in tags if t is not None))
    reasons = []
    if unknown:
        reasons.append(f"sentence {entry.index}: unknown tag(s) {', '.join(map(repr, unknown))} dropped")
        batch.problems.append(reasons[-1])
    if not kept:
        return reasons  # no usable tag: left missing, asked again
    depends = tuple(sorted({d for d in entry.depends_on if 0 <= d < entry.index}))
    batch.found[entry.index] = (kept, depends)
    return reasons


def extract_json(text: str) -> Any | None:
    """The first JSON object or array in `text` (whole text, fenced code, or embedded in prose); None if none."""
    candidates = [text, *_FENCE.findall(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, (dict, list)) and value:
            return value
    return None


def reply_items(data: Any, expected: Sequence[int]) -> list[Any] | None:
    """The list of per-sentence entries in a parsed reply, whatever common shape it came in."""
    if isinstance(data, dict):
        for key in ("sentences", "labels", "chunks", "results", "annotations", "items"):
            if isinstance(data.get(key), list):
                return _with_positions(data[key], expected)
        keyed = [(k, v) for k, v in data.items() if str(k).strip().lstrip("[").rstrip("]").isdigit()]
        if keyed:  # {"3": {...}} or {"3": ["tag"]}
            return [{**_as_entry(v), "index": int(str(k).strip("[] "))} for k, v in keyed]
        if any(k in data for k in ("function_tags", "tags", "tag")):
            return _with_positions([data], expected)
        return None
    if isinstance(data, list):
        return _with_positions(data, expected)
    return None


def _with_positions(items: list[Any], expected: Sequence[int]) -> list[Any]:
    """Entries without an index take their position's expected index (only when the counts agree)."""
    same_length = len(items) == len(expected)
    return [{"index": expected[i], **_as_entry(item)} if same_length else _as_entry(item) for i, item in enumerate(items)]


def _as_entry(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, (list, str)):
        return {"function_tags": value}
    return {}


def _lenient_item(item: dict[str, Any]) -> dict[str, Any]:
    """Map the key names models use instead of ours, and single values to lists."""
    index = next((item[k] for k in ("index", "chunk_idx", "sentence_index", "idx", "id", "i", "sentence") if k in item), None)
    if isinstance(index, str):
        index = index.strip("[] ")
    tags = next((item[k] for k in ("function_tags", "tags", "tag", "labels", "label", "function") if k in item), [])
    depends = next((item[k] for k in ("depends_on", "dependencies", "depends") if k in item), [])
    tags = [tags] if isinstance(tags, str) else tags
    depends = [depends] if isinstance(depends, (int, str)) else depends
    if isinstance(depends, list):
        depends = [int(str(d).strip("[] ")) for d in depends if str(d).strip("[] ").lstrip("-").isdigit()]
    return {"index": index, "function_tags": tags if isinstance(tags, list) else [], "depends_on": depends}


def normalise_tag(raw: Any, taxonomy: Taxonomy) -> str | None:
    """A taxonomy tag for what a model wrote ("Active Computation", "computation", "6. self_checking"), or None."""
    if not isinstance(raw, str):
        return None
    cleaned = re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_")
    cleaned = re.sub(r"^\d+_", "", cleaned)  # "6_self_checking" from a numbered list
    if cleaned in taxonomy.names:
        return cleaned
    matches = [name for name in taxonomy.names if cleaned and (cleaned in name.split("_") or name.startswith(cleaned))]
    return matches[0] if len(matches) == 1 else None


def _problem(batch: _Batch, reason: str) -> str:
    batch.problems.append(reason)
    return reason


def _ranges(indices: Sequence[int]) -> str:
    shown = ", ".join(map(str, indices[:12]))
    return f"[{shown}{', …' if len(indices) > 12 else ''}]"
