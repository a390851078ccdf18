"""Rollouts already on disk in the Thought Anchors layouts, as `TraceRollouts` (no model needed).

Two layouts are read (both under a problem folder holding problem.json + base_solution.json):

* the authors' rollout layout: `chunk_<i>/solutions.json`, a list of
  {chunk_removed, chunk_resampled, rollout, answer, is_correct, …} (entries with an `error` are failed rollouts),
  and, if present, forced answers in the sibling tree `<folder>_forced_answer/<problem>/chunk_<i>/solutions.json`
  (e.g. `correct_base_solution_forced_answer/problem_330/`). Every metric can be computed.
* the released viewer layout: `chunks_resampled.json` = {chunk index: [first resampled sentence, …]}. Only the
  first sentences are there (no answers): different_trajectories_fraction and overdeterminedness can be
  computed; the answer-based metrics are "not computed".

Sentences are the paper-mode chunks of base_solution.json's solution (the rollouts were made from those);
tags are the first function tag of chunks_labeled.json when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.methods.rollout_sets import GradedRollout, PrefixRollouts, TraceRollouts
from anchors.traces.answers import answer_key
from anchors.traces.segment import split_sentences
from anchors.traces.thought_anchors import find_problem_dirs, read_json, read_labeled_chunks, trace_from_problem_dir

FORCED_SUFFIX = "_forced_answer"


def load_ta_rollouts(problem_dir: Path, root: Path, mode: str = "paper") -> tuple[TraceRollouts, list[str | None]]:
    """The rollouts of one problem folder and the sentences' function tags (None where unlabelled)."""
    trace = trace_from_problem_dir(problem_dir, root)
    sentences = tuple(split_sentences(trace.thinking, mode="paper"))
    has_gold = trace.gold_answer is not None
    if any((problem_dir / f"chunk_{i}" / "solutions.json").is_file() for i in range(len(sentences))):
        prefixes = _full_layout(problem_dir, len(sentences), mode)
        rollouts = TraceRollouts(trace.id, sentences, prefixes, answers_known=True, has_gold=has_gold)
    elif (problem_dir / "chunks_resampled.json").is_file():
        prefixes = _viewer_layout(problem_dir / "chunks_resampled.json", len(sentences))
        rollouts = TraceRollouts(trace.id, sentences, prefixes, answers_known=False, has_gold=has_gold)
    else:
        raise InputError(f"{problem_dir}: no rollouts found (neither chunk_<i>/solutions.json nor chunks_resampled.json)")
    return rollouts, ta_tags(problem_dir, len(sentences))


def iter_ta_rollouts(root: str | Path, mode: str = "paper"):
    """Every problem folder under `root`, in sorted order."""
    root = Path(root)
    for problem_dir in find_problem_dirs(root):
        yield load_ta_rollouts(problem_dir, root, mode)


def ta_tags(problem_dir: Path, n: int) -> list[str | None]:
    labeled = read_labeled_chunks(problem_dir) or []
    tags: list[str | None] = [None] * n
    for chunk in labeled:
        index, names = chunk.get("chunk_idx"), chunk.get("function_tags") or []
        if isinstance(index, int) and 0 <= index < n and names:
            tags[index] = str(names[0])
    return tags


def _viewer_layout(path: Path, n: int) -> tuple[PrefixRollouts, ...]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object mapping chunk index to a list of sentences")
    out = []
    for i in range(n):
        firsts = data.get(str(i), [])
        out.append(PrefixRollouts(tuple(GradedRollout(first_sentence=str(t), answer=None, correct=None)
                                        for t in firsts if isinstance(t, str))))
    return tuple(out)


def _full_layout(problem_dir: Path, n: int, mode: str) -> tuple[PrefixRollouts, ...]:
    forced_dir = problem_dir.parent.with_name(problem_dir.parent.name + FORCED_SUFFIX) / problem_dir.name
    out = []
    for i in range(n):
        resampled, failed = _solutions(problem_dir / f"chunk_{i}" / "solutions.json", mode, forced=False)
        forced_path = forced_dir / f"chunk_{i}" / "solutions.json"
        forced = _solutions(forced_path, mode, forced=True)[0] if forced_dir.is_dir() else None
        out.append(PrefixRollouts(resampled, forced, failed))
    return tuple(out)


def _solutions(path: Path, mode: str, forced: bool) -> tuple[tuple[GradedRollout, ...], int]:
    if not path.is_file():
        return (), 0
    records = read_json(path)
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a JSON list of rollouts")
    good = [r for r in records if isinstance(r, dict) and "error" not in r]
    return tuple(_graded(r, mode, forced) for r in good), len(records) - len(good)


def _graded(record: dict[str, Any], mode: str, forced: bool) -> GradedRollout:
    """One stored rollout: the authors' extracted answer and verdict are kept as they are."""
    raw = record.get("answer")
    answer = answer_key(raw, mode) if isinstance(raw, str) and raw not in ("", "None") else None  # type: ignore[arg-type]
    correct = bool(record.get("is_correct")) if answer is not None and record.get("is_correct") is not None else None
    text = record.get("rollout") if isinstance(record.get("rollout"), str) else ""
    sentences = () if forced or not text else tuple(s.text for s in split_sentences(text, mode="paper"))
    first = record.get("chunk_resampled")
    return GradedRollout(first_sentence=first if isinstance(first, str) else (sentences[0] if sentences else ""),
                         answer=answer or None, correct=correct, sentences=sentences)
