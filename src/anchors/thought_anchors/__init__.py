"""The Thought Anchors authors' on-disk layout, in one place: reading their released folders (traces, rollouts,
labels, per-sentence results) and knowing every file and field name of it.

A problem folder (folders may be nested, e.g. `<model>/<correct|incorrect>_base_solution/problem_<id>/`) holds
`problem.json` (problem, gt_answer, …), `base_solution.json` (prompt, solution = thinking + `</think>` + answer
text, answer, is_correct) and, optionally, `chunks_labeled.json` (the authors' sentences with function tags and
scores), `chunks_resampled.json` (first resampled sentences), `step_importance*.json` (sentence→sentence
matrices) and `chunk_<i>/solutions.json` (full rollouts; forced answers in a sibling `…_forced_answer` tree).

Readers go folder by folder (`FolderReader`): a damaged folder is reported by trace id and file and skipped; the
others are read.
"""

from __future__ import annotations

from pathlib import Path

from anchors.thought_anchors.folder import DamagedFile, ProblemFolder, trace_id_for
from anchors.thought_anchors.folders import DamagedFolderWarning, FolderReader, Skipped, find_problem_folders
from anchors.traces.records import Trace

__all__ = ["DamagedFile", "DamagedFolderWarning", "FolderReader", "ProblemFolder", "Skipped", "find_problem_folders",
           "load_thought_anchors", "trace_id_for"]


def load_thought_anchors(root: str | Path, reader: FolderReader | None = None) -> list[Trace]:
    """All traces under a Thought Anchors folder, ids derived from their paths below `root`. A folder whose
    problem.json or base_solution.json is damaged is skipped with a `DamagedFolderWarning` (or handed to the
    `reader`'s `on_skip`); `reader.skipped` lists them."""
    reader = reader or FolderReader(root)
    return list(reader.each(ProblemFolder.trace))
