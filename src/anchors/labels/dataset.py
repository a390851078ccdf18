"""Labelled sentence sets: the project's own set (package data), JSONL files, and Thought Anchors folders.

A labelled set is a list of `LabelledTrace` records, one per trace, its sentences in order (the offline
classifier uses each sentence's position in its trace). On disk (JSONL, one trace per line)::

    {"id": "t1", "problem": "...", "sentences": [{"text": "Okay, so ...", "tags": ["problem_setup"]}, ...]}
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anchors.errors import InputError
from anchors.labels.result import SentenceLabels
from anchors.traces.jsonl import RecordReader
from anchors.traces.records import TRACE_ID_PATTERN
from anchors.traces.taxonomy import UNKNOWN, Taxonomy
from anchors.thought_anchors import FolderReader, ProblemFolder, Skipped
from anchors.thought_anchors.folder import ChunkRecord

SCHEMA_VERSION = 1
BUNDLED_SET = "tag_sentences.jsonl"


class LabelledSentence(BaseModel):
    """One sentence and its tags (first = primary); `depends_on` lists earlier sentence indices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    tags: list[str] = Field(min_length=1)
    depends_on: list[int] = Field(default_factory=list)


class LabelledTrace(BaseModel):
    """The sentences of one trace with their function tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(pattern=TRACE_ID_PATTERN)
    problem: str | None = None
    sentences: list[LabelledSentence] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sentences]

    @property
    def primary_tags(self) -> list[str]:
        return [s.tags[0] for s in self.sentences]

    def to_json_line(self) -> str:
        return self.model_dump_json(exclude_none=True)


def read_labelled(source: str | Path, on_skip: Callable[[Skipped], None] | None = None) -> list[LabelledTrace]:
    """A labelled set from a JSONL file, or from a folder in the Thought Anchors layout (chunks_labeled.json;
    a damaged folder is skipped and handed to `on_skip`)."""
    path = Path(source)
    if path.is_dir():
        return labelled_from_thought_anchors(path, on_skip)
    reader = RecordReader(path, LabelledTrace)  # type: ignore[type-var]
    traces = list(reader)
    if reader.errors:
        listing = "\n".join(str(p) for p in reader.errors)
        raise InputError(f"{len(reader.errors)} invalid line(s) in {path}:\n{listing}")
    if not traces:
        raise InputError(f"{path}: no labelled traces in the file")
    return traces


def bundled_labelled() -> list[LabelledTrace]:
    """The labelled sentence set written for this project (shipped as package data)."""
    resource = importlib.resources.files("anchors") / "data" / BUNDLED_SET
    with importlib.resources.as_file(resource) as path:
        return read_labelled(path)


def labelled_from_thought_anchors(root: str | Path, on_skip: Callable[[Skipped], None] | None = None) -> list[LabelledTrace]:
    """Every problem folder with the authors' labels under `root`, as labelled traces (ids from their folder
    paths); a folder whose chunks_labeled.json is damaged is skipped (a warning, or `on_skip`)."""
    reader = FolderReader(root, on_skip=on_skip)
    labelled = [p for p in reader.folders if ProblemFolder(p, reader.root).has_chunks()]
    if not labelled:
        raise InputError(f"{root}: no chunks_labeled.json found (expected a Thought Anchors folder, or a labelled JSONL file)")
    traces = list(reader.each(labelled_trace, labelled))
    if not traces:
        raise InputError(f"{root}: {reader.summary('read')}")
    return traces


def labelled_trace(folder: ProblemFolder) -> LabelledTrace:
    """One problem folder's chunks_labeled.json as a labelled trace (the problem text when problem.json is readable)."""
    problem = folder.optional(folder.problem)
    return LabelledTrace(id=folder.trace_id, problem=problem.problem if problem else None,
                         sentences=[_sentence_from_chunk(chunk) for chunk in folder.chunks()],
                         metadata={"source": "thought-anchors", "source_dir": str(folder.path)})


def _sentence_from_chunk(chunk: ChunkRecord) -> LabelledSentence:
    depends = [int(d) for d in chunk.depends_on if str(d).lstrip("-").isdigit()]
    return LabelledSentence(text=chunk.chunk or " ", tags=chunk.function_tags or [UNKNOWN], depends_on=depends)


def labelled_from_result(labels: SentenceLabels, trace_id: str, problem: str | None) -> LabelledTrace:
    """One trace's labels (e.g. from an LLM endpoint) as a labelled trace that `fit_offline` can train on."""
    depends = labels.depends_on or ((),) * len(labels)
    sentences = [LabelledSentence(text=text, tags=list(tags), depends_on=list(used))
                 for text, tags, used in zip(labels.sentences, labels.all_tags, depends)]
    return LabelledTrace(id=trace_id, problem=problem, sentences=sentences,
                         metadata={"source": labels.labeller, "taxonomy": labels.taxonomy.name})


def check_tags(traces: list[LabelledTrace], taxonomy: Taxonomy, source: str) -> None:
    """InputError listing every tag that the taxonomy does not define (up to 20 of them)."""
    allowed = set(taxonomy.labels)
    bad = [f"trace {t.id!r} sentence {i}: tag {tag!r}" for t in traces for i, s in enumerate(t.sentences)
           for tag in s.tags if tag not in allowed]
    if bad:
        shown = "\n".join(bad[:20]) + (f"\n… and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise InputError(f"{source}: {len(bad)} tag(s) not in taxonomy {taxonomy.name!r} ({', '.join(taxonomy.names)}):\n{shown}")


def labelled_fingerprint(traces: list[LabelledTrace]) -> str:
    """A short content hash of a labelled set (recorded in fitted models)."""
    digest = hashlib.sha256()
    for trace in traces:
        digest.update(json.dumps([trace.texts, [s.tags for s in trace.sentences]]).encode())
    return digest.hexdigest()[:16]
