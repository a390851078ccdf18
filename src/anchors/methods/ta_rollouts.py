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
tags are the first function tag of chunks_labeled.json when present, and the metrics stored there come along,
so a metric the rollouts on disk cannot give (the viewer layout has no answers) can be shown as the authors' value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.methods.rollout_sets import GradedRollout, PrefixRollouts, TraceRollouts
from anchors.thought_anchors import FolderReader, ProblemFolder
from anchors.thought_anchors.folder import CHUNK_METRICS, ChunkRecord, SolutionRecord
from anchors.traces.answers import answer_key
from anchors.traces.records import Trace
from anchors.traces.segment import split_sentences


@dataclass(frozen=True)
class AuthorsRollouts:
    """One problem folder: the trace, its rollouts, the authors' first function tag per sentence (None where
    unlabelled) and the metrics they stored per sentence (metric -> values; empty without chunks_labeled.json)."""

    trace: Trace
    rollouts: TraceRollouts
    tags: list[str | None]
    stored: dict[str, list[float]] = field(default_factory=dict)


def load_ta_rollouts(problem_dir: ProblemFolder | Path, root: Path | None = None,
                     mode: str = "paper") -> AuthorsRollouts:
    """The rollouts of one problem folder, with the authors' tags and stored metrics."""
    folder = problem_dir if isinstance(problem_dir, ProblemFolder) else ProblemFolder(problem_dir, root or Path(problem_dir).parent)
    trace = folder.trace()
    sentences = tuple(split_sentences(trace.thinking, mode="paper"))
    has_gold = trace.gold_answer is not None
    if folder.rollout_chunks():
        prefixes = _full_layout(folder, len(sentences), mode)
        rollouts = TraceRollouts(trace.id, sentences, prefixes, answers_known=True, has_gold=has_gold)
    elif folder.has_resampled():
        prefixes = _viewer_layout(folder.resampled(), len(sentences))
        rollouts = TraceRollouts(trace.id, sentences, prefixes, answers_known=False, has_gold=has_gold)
    else:
        raise InputError(f"{folder.path}: no rollouts found (neither chunk_<i>/solutions.json nor chunks_resampled.json)")
    chunks = _matching_chunks(folder, len(sentences))
    tags = [c.function_tags[0] if c.function_tags else None for c in chunks] if chunks else [None] * len(sentences)
    stored = {m: [c.metrics().get(m, float("nan")) for c in chunks] for m in CHUNK_METRICS} if chunks else {}
    return AuthorsRollouts(trace, rollouts, tags, {m: v for m, v in stored.items() if any(x == x for x in v)})


def iter_ta_rollouts(root: str | Path, mode: str = "paper", reader: FolderReader | None = None):
    """Every problem folder under `root`, in sorted order; damaged folders are skipped (see `FolderReader`)."""
    reader = reader or FolderReader(root)
    yield from reader.each(lambda folder: load_ta_rollouts(folder, mode=mode))


def _matching_chunks(folder: ProblemFolder, n: int) -> list[ChunkRecord] | None:
    """The authors' chunks when they number the same n sentences (a damaged or mismatched file is left out with a
    warning: see `ProblemFolder.optional`); None without chunks_labeled.json."""
    if not folder.has_chunks():
        return None
    return folder.optional(lambda: (folder.check_chunks_match(n), folder.chunks())[1])


def _viewer_layout(resampled: dict[int, list[str]], n: int) -> tuple[PrefixRollouts, ...]:
    return tuple(PrefixRollouts(tuple(GradedRollout(first_sentence=t, answer=None, correct=None)
                                      for t in resampled.get(i, []))) for i in range(n))


def _full_layout(folder: ProblemFolder, n: int, mode: str) -> tuple[PrefixRollouts, ...]:
    out = []
    for i in range(n):
        resampled, failed = _solutions(folder.solutions(i), mode, forced=False)
        forced = _solutions(folder.solutions(i, forced=True), mode, forced=True)[0] if folder.has_forced() else None
        out.append(PrefixRollouts(resampled, forced, failed))
    return tuple(out)


def _solutions(records: list[SolutionRecord] | None, mode: str, forced: bool) -> tuple[tuple[GradedRollout, ...], int]:
    if records is None:
        return (), 0
    good = [r for r in records if "error" not in r.model_fields_set]  # an `error` key marks a failed rollout
    return tuple(_graded(r, mode, forced) for r in good), len(records) - len(good)


def _graded(record: SolutionRecord, mode: str, forced: bool) -> GradedRollout:
    """One stored rollout: the authors' extracted answer and verdict are kept as they are."""
    raw = record.answer
    answer = answer_key(raw, mode) if raw not in (None, "", "None") else None  # type: ignore[arg-type]
    correct = bool(record.is_correct) if answer is not None and record.is_correct is not None else None
    text = record.rollout or ""
    sentences = () if forced or not text else tuple(s.text for s in split_sentences(text, mode="paper"))
    first = record.chunk_resampled
    return GradedRollout(first_sentence=first if first is not None else (sentences[0] if sentences else ""),
                         answer=answer or None, correct=correct, sentences=sentences)


def with_authors_metrics(scores: Any, stored: dict[str, list[float]]) -> Any:
    """TraceScores where each metric the rollouts on disk could not give (`not_computed`) takes the authors'
    stored value instead; `run["from_authors"]` lists them (their intervals stay absent: none was released)."""
    taken = [m for m in scores.not_computed if m in stored and len(stored[m]) == len(scores.rows)]
    if not taken:
        return scores
    rows = tuple(row.model_copy(update={m: stored[m][i] for m in taken}) for i, row in enumerate(scores.rows))
    return replace(scores, rows=rows, not_computed=tuple(m for m in scores.not_computed if m not in taken),
                   run={**scores.run, "from_authors": taken})
