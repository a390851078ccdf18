"""The authors' released results (Thought Anchors layout) as TraceResults, so every figure and the report can
be drawn from them with no model.

Per problem folder: chunks_labeled.json (sentences, function tags, dependencies and the black-box metrics),
step_importance.json (the sentence→sentence resampling matrix), step_importance_supp.json (the suppression
matrix, only some traces) and chunks_resampled.json (~100 resampled first sentences per sentence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anchors.errors import InputError
from anchors.report.results import TraceResults, data_notes
from anchors.traces.thought_anchors import find_problem_dirs, read_json, read_labeled_chunks, trace_from_problem_dir

# Fields of chunks_labeled.json kept in the sentence table (the metric fields are kept as they come).
_TEXT_FIELDS = {"chunk": "text", "chunk_idx": "index"}
_DROP_FIELDS = ("function_tags",)


def load_ta_results(root: str | Path, *, alternatives: int = 5) -> list[TraceResults]:
    """Every trace under a Thought Anchors folder that has chunks_labeled.json, with up to `alternatives`
    resampled first sentences per sentence (0 skips reading chunks_resampled.json, the large file)."""
    root = Path(root)
    found = [ta_trace_results(d, root, alternatives=alternatives) for d in find_problem_dirs(root)
             if (d / "chunks_labeled.json").is_file()]
    if not found:
        raise InputError(f"{root}: no problem folder holds chunks_labeled.json (the authors' per-sentence scores)")
    return found


def ta_trace_results(problem_dir: str | Path, root: str | Path, *, alternatives: int = 5) -> TraceResults:
    problem_dir, root = Path(problem_dir), Path(root)
    trace = trace_from_problem_dir(problem_dir, root)
    notes: list[str] = []
    sentences = _sentence_table(problem_dir)
    n = len(sentences)
    matrices = {}
    for name, filename in (("resampling", "step_importance.json"), ("suppression", "step_importance_supp.json")):
        matrix = _read_step_matrix(problem_dir / filename, n, notes)
        if matrix is not None:
            matrices[name] = matrix
        elif not (problem_dir / filename).is_file():
            notes.append(f"no {name} matrix ({filename} not in the authors' folder"
                         + (": they released it for the Qwen-14B correct traces only)" if name == "suppression" else ")"))
    notes.append("no receiver-head results (the authors' viewer data has none)")
    info = {"id": trace.id, "problem": trace.problem, "answer": trace.metadata.get("answer"),
            "gold_answer": trace.gold_answer, "is_correct": trace.metadata.get("is_correct"), "model": trace.model,
            "nickname": trace.metadata.get("nickname"), "source": str(problem_dir)}
    return TraceResults(
        trace_id=trace.id, sentences=sentences, matrices=matrices,
        alternatives=_read_alternatives(problem_dir / "chunks_resampled.json", alternatives, notes),
        info=info, notes=tuple(notes) + tuple(data_notes(sentences)),
    )


def _sentence_table(problem_dir: Path) -> pd.DataFrame:
    chunks = read_labeled_chunks(problem_dir) or []
    rows = []
    for position, chunk in enumerate(chunks):
        if not isinstance(chunk, dict):
            raise InputError(f"{problem_dir / 'chunks_labeled.json'}: item {position} is not an object")
        tags = chunk.get("function_tags") or []
        row: dict[str, Any] = {_TEXT_FIELDS.get(k, k): v for k, v in chunk.items() if k not in _DROP_FIELDS}
        row.setdefault("index", position)
        row["tag"] = str(tags[0]) if tags else None
        row["tags"] = ";".join(map(str, tags))
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("index", kind="stable").reset_index(drop=True) if rows else table


def _read_step_matrix(path: Path, n: int, notes: list[str]) -> np.ndarray | None:
    """step_importance*.json → float [source, target] (NaN where the file has no value)."""
    if not path.is_file():
        return None
    records = read_json(path)
    matrix = np.full((n, n), np.nan)
    skipped = 0
    for record in records if isinstance(records, list) else []:
        source = record.get("source_chunk_idx")
        for impact in record.get("target_impacts") or []:
            target, value = impact.get("target_chunk_idx"), impact.get("importance_score")
            if all(isinstance(v, int) and 0 <= v < n for v in (source, target)) and value is not None:
                matrix[source, target] = float(value)
            else:
                skipped += 1
    if skipped:
        notes.append(f"{path.name}: {skipped} entr(y/ies) outside the trace's {n} sentences were left out")
    return matrix


def _read_alternatives(path: Path, keep: int, notes: list[str]) -> dict[int, list[str]]:
    if keep <= 0:
        return {}
    if not path.is_file():
        notes.append("no resampled alternatives (chunks_resampled.json not found)")
        return {}
    record = read_json(path)
    if not isinstance(record, dict):
        return {}
    return {int(k): [str(t) for t in v[:keep]] for k, v in record.items() if str(k).isdigit() and isinstance(v, list)}
