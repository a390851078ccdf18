"""Rollouts in the Thought Anchors on-disk layout, read and written: `chunk_{i}/solutions.json` per trace (methods.md §4).

A problem folder holds `problem.json`, `base_solution.json` and, per sentence i, `chunk_{i}/solutions.json`:
a JSON list with one record per rollout resampled from sentence i on (`chunk_removed`, `prefix_without_chunk`,
`chunk_resampled`, `rollout`, `full_cot`, `answer`, `is_correct`, sometimes `error`). `read_solutions` loads
the authors' released folders unchanged; `export_thought_anchors` writes ours the same way (with two extra
fields, `anchors_seed` and `anchors_finish_reason`, that their readers ignore), so they can be shared and
read back (`read_solutions`, `load_thought_anchors`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.rollouts.base import PrefixRequest, Rollout
from anchors.rollouts.plan import ROLLOUT_BLOCK, stream
from anchors.thought_anchors.folder import BASE_SOLUTION, PROBLEM, SOLUTIONS, ProblemFolder, SolutionRecord
from anchors.traces.answers import grade
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, split_sentences


def read_solutions(problem_dir: str | Path) -> dict[int, list[SolutionRecord]]:
    """Every `chunk_{i}/solutions.json` of a problem folder, by sentence index i (sorted)."""
    folder = ProblemFolder(problem_dir, Path(problem_dir).parent)
    found = {i: folder.solutions(i) or [] for i in folder.rollout_chunks()}
    if not found:
        raise InputError(f"{folder.path}: no chunk_*/solutions.json files (not a Thought Anchors rollout folder)")
    return found


def solutions_as_rollouts(trace_id: str, solutions: dict[int, list[SolutionRecord]]) -> dict[str, list[Rollout]]:
    """The records as `Rollout`s keyed like `resampling_requests`: record k of sentence i is rollout k % block of
    the request `<trace>/resample/<i>/<k // block>` (seed -1: the authors recorded none)."""
    out: dict[str, list[Rollout]] = {}
    for i, records in solutions.items():
        for k, r in enumerate(records):
            key = f"{trace_id}/resample/{i}/{k // ROLLOUT_BLOCK}"
            out.setdefault(key, []).append(Rollout(
                key=key, index=k % ROLLOUT_BLOCK, seed=int(_extra(r, "anchors_seed", -1)), text=r.rollout or "",
                finish_reason="error" if r.error else _extra(r, "anchors_finish_reason", "eos"), error=r.error))
    return out


def _extra(record: SolutionRecord, name: str, default: Any) -> Any:
    value = (record.model_extra or {}).get(name)
    return default if value is None else value


def export_thought_anchors(trace: Trace, requests: Sequence[PrefixRequest], results: dict[str, list[Rollout]],
                           out_dir: str | Path, *, mode: Mode = "default") -> Path:
    """Write one trace's resampling rollouts (`resampling_requests` and what they sampled) as a Thought Anchors
    problem folder `out_dir/<trace id>/`: one chunk_<i>/solutions.json per sentence, rollouts in stream order."""
    folder = Path(out_dir) / trace.id
    _write_json(folder / PROBLEM, {"problem": trace.problem, "gt_answer": trace.gold_answer})
    first = requests[0]
    prompt = first.prompt_text[:len(first.prompt_text) - len(first.meta["prefix_without_chunk"])]  # type: ignore[arg-type]
    solution = f"{trace.thinking}</think>{trace.answer_text}"
    _write_json(folder / BASE_SOLUTION, {"prompt": prompt, "solution": solution, "full_cot": prompt + solution})
    by_prefix: dict[int, list[PrefixRequest]] = {}
    for request in requests:
        if request.meta["chunk_removed"]:  # default mode's prefix after the whole thinking removes no sentence
            by_prefix.setdefault(int(request.meta["prefix"]), []).append(request)  # type: ignore[call-overload]
    for i, blocks in by_prefix.items():
        records = [_record(blocks[0], rollout, trace.gold_answer, mode) for _, rollout in stream(results, blocks, 0, 10**9)]
        _write_json(folder / f"chunk_{i}" / SOLUTIONS, records)
    return folder


def _record(request: PrefixRequest, rollout: Rollout, gold: str | None, mode: Mode) -> dict[str, Any]:
    if not rollout.ok:
        return {"chunk_removed": request.meta["chunk_removed"],
                "prefix_without_chunk": request.meta["prefix_without_chunk"], "error": rollout.error}
    graded = grade(rollout.text, gold, mode=mode)
    first = split_sentences(rollout.text, mode=mode)
    return {"chunk_removed": request.meta["chunk_removed"],
            "prefix_without_chunk": request.meta["prefix_without_chunk"],
            "chunk_resampled": first[0].text if first else "", "rollout": rollout.text,
            "full_cot": request.prompt_text + rollout.text, "answer": graded.answer or "",
            "is_correct": bool(graded.correct), "anchors_seed": rollout.seed,
            "anchors_finish_reason": rollout.finish_reason}


def _write_json(path: Path, value: Any) -> None:
    """Write atomically (temporary file + rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(value, stream, ensure_ascii=False, indent=1)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; these files are meant to be shared
    os.replace(tmp, path)
