"""The authors' released results (Thought Anchors layout) as TraceResults, so every figure and the report can
be drawn from them with no model.

Per problem folder: the authors' sentences with their function tags, dependencies and black-box metrics (required),
the sentence→sentence resampling and suppression matrices and the resampled first sentences (optional: absent is a
note, damaged is a warning), and the problem and base solution (optional: shown in the report header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anchors.results.trace import TraceResults, data_notes
from anchors.thought_anchors import FolderReader, ProblemFolder
from anchors.thought_anchors.folder import CHUNKS_RESAMPLED, STEP_IMPORTANCE, ChunkRecord, StepImportanceRecord
from anchors.traces.segment import split_sentences


def load_ta_results(root: str | Path, *, alternatives: int = 5, reader: FolderReader | None = None) -> list[TraceResults]:
    """Every trace under a Thought Anchors folder, with up to `alternatives` resampled first sentences per
    sentence (0 skips reading chunks_resampled.json, the large file). A folder whose per-sentence results are
    missing or damaged is skipped with a warning (see `FolderReader`; pass one to collect what was skipped)."""
    reader = reader or FolderReader(root)
    return list(reader.each(lambda folder: ta_trace_results(folder, alternatives=alternatives)))


def ta_trace_results(folder: ProblemFolder | str | Path, root: str | Path | None = None, *,
                     alternatives: int = 5) -> TraceResults:
    """One problem folder (a `ProblemFolder`, or its path and the root its trace id is taken below)."""
    if not isinstance(folder, ProblemFolder):
        folder = ProblemFolder(folder, root if root is not None else Path(folder).parent)
    chunks = folder.chunks()
    notes: list[str] = []
    info = _info(folder, len(chunks))
    sentences = _sentence_table(chunks)
    matrices = {}
    for name in STEP_IMPORTANCE:
        records = folder.optional(lambda name=name: folder.step_importance(name))
        if records is not None:
            matrices[name] = _step_matrix(records, len(chunks), STEP_IMPORTANCE[name], notes)
        elif not folder.has(STEP_IMPORTANCE[name]):
            notes.append(f"no {name} matrix ({STEP_IMPORTANCE[name]} not in the authors' folder"
                         + (": they released it for the Qwen-14B correct traces only)" if name == "suppression" else ")"))
    notes.append("no receiver-head results (the authors' viewer data has none)")
    shown = _alternatives(folder, alternatives, notes)
    notes += [f"{damage}; left out" for damage in folder.damaged]
    return TraceResults(trace_id=folder.trace_id, sentences=sentences, matrices=matrices, alternatives=shown,
                        info=info, notes=tuple(notes) + tuple(data_notes(sentences)))


def _info(folder: ProblemFolder, n_chunks: int) -> dict[str, Any]:
    """The report header's fields; a trace whose base solution splits into other sentences than the chunks is refused."""
    info: dict[str, Any] = {"id": folder.trace_id, "model": folder.model_name(), "source": str(folder.path)}
    trace = folder.optional(folder.trace, missing_ok=not folder.has_trace())  # half a trace is damage
    if trace is None:
        return info
    folder.check_chunks_match(len(split_sentences(trace.thinking, mode="paper")))
    return {**info, "problem": trace.problem, "answer": trace.metadata.get("answer"), "gold_answer": trace.gold_answer,
            "is_correct": trace.metadata.get("is_correct"), "nickname": trace.metadata.get("nickname")}


def _sentence_table(chunks: list[ChunkRecord]) -> pd.DataFrame:
    rows = []
    for chunk in chunks:
        tags = chunk.function_tags
        rows.append({"index": chunk.chunk_idx, "text": chunk.chunk, **(chunk.model_extra or {}), **chunk.metrics(),
                     "depends_on": list(chunk.depends_on), "tag": tags[0] if tags else None, "tags": ";".join(tags)})
    return pd.DataFrame(rows)


def _step_matrix(records: list[StepImportanceRecord], n: int, filename: str, notes: list[str]) -> np.ndarray:
    """step_importance*.json → float [source, target] (NaN where the file has no value)."""
    matrix = np.full((n, n), np.nan)
    skipped = 0
    for record in records:
        for impact in record.target_impacts:
            source, target = record.source_chunk_idx, impact.target_chunk_idx
            if 0 <= source < n and 0 <= target < n and impact.importance_score is not None:
                matrix[source, target] = impact.importance_score
            else:
                skipped += 1
    if skipped:
        notes.append(f"{filename}: {skipped} entr(y/ies) outside the trace's {n} sentences were left out")
    return matrix


def _alternatives(folder: ProblemFolder, keep: int, notes: list[str]) -> dict[int, list[str]]:
    if keep <= 0:
        return {}
    resampled = folder.optional(folder.resampled)
    if resampled is None:
        if not folder.has(CHUNKS_RESAMPLED):
            notes.append(f"no resampled alternatives ({CHUNKS_RESAMPLED} not found)")
        return {}
    return {index: texts[:keep] for index, texts in resampled.items()}
