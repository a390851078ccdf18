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

from anchors.errors import InputError
from anchors.methods.rollout_sets import GradedRollout, PrefixRollouts, TraceRollouts
from anchors.thought_anchors import FolderReader, ProblemFolder
from anchors.thought_anchors.folder import SolutionRecord
from anchors.traces.answers import answer_key
from anchors.traces.segment import split_sentences


def load_ta_rollouts(problem_dir: ProblemFolder | Path, root: Path | None = None,
                     mode: str = "paper") -> tuple[TraceRollouts, list[str | None]]:
    """The rollouts of one problem folder and the sentences' function tags (None where unlabelled)."""
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
    return rollouts, ta_tags(folder, len(sentences))


def iter_ta_rollouts(root: str | Path, mode: str = "paper", reader: FolderReader | None = None):
    """Every problem folder under `root`, in sorted order; damaged folders are skipped (see `FolderReader`)."""
    reader = reader or FolderReader(root)
    yield from reader.each(lambda folder: load_ta_rollouts(folder, mode=mode))


def ta_tags(folder: ProblemFolder, n: int) -> list[str | None]:
    """The authors' first function tag per sentence (all None without chunks_labeled.json; a damaged one, or one
    that numbers other sentences than the base solution's, is left out with a warning)."""
    if not folder.has_chunks():
        return [None] * n
    chunks = folder.optional(lambda: (folder.check_chunks_match(n), folder.chunks())[1])
    if chunks is None:
        return [None] * n
    return [c.function_tags[0] if c.function_tags else None for c in chunks]


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
