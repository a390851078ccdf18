"""Import traces from the Thought Anchors layout (the authors' released folders).

A problem folder holds `problem.json` (problem, gt_answer, …) and `base_solution.json` (prompt, solution =
thinking + `</think>` + answer text, answer, is_correct), and optionally `chunks_labeled.json` (the
authors' sentences with function tags and scores). Folders may be nested, e.g.
`<model>/<correct|incorrect>_base_solution/problem_<id>/`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.traces.records import Trace

THINK_CLOSE = "</think>"
PAPER_TEMPLATE = "paper"


def find_problem_dirs(root: str | Path) -> list[Path]:
    """Every folder under `root` (itself included) holding both problem.json and base_solution.json, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected a Thought Anchors folder with problem.json + base_solution.json)")
    found = sorted({p.parent for p in root.rglob("base_solution.json") if (p.parent / "problem.json").is_file()})
    if not found:
        raise InputError(f"{root}: no problem folders found (none holds both problem.json and base_solution.json)")
    return found


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read JSON ({exc})") from None


def trace_id_for(problem_dir: Path, root: Path) -> str:
    """The folder's path below `root` ('a/b/problem_1' -> 'a--b--problem_1'); its own name if it is the root."""
    relative = problem_dir.relative_to(root).parts or (problem_dir.name,)
    return re.sub(r"[^A-Za-z0-9._-]", "_", "--".join(relative))


def _model_name(problem_dir: Path) -> str | None:
    for part in reversed(problem_dir.parts):
        if "r1-distill" in part.lower():
            return part
    return None


def trace_from_problem_dir(problem_dir: Path, root: Path) -> Trace:
    problem = read_json(problem_dir / "problem.json")
    base = read_json(problem_dir / "base_solution.json")
    solution = _field(base, "solution", problem_dir / "base_solution.json")
    thinking, _, answer_text = solution.partition(THINK_CLOSE)
    metadata = {
        "source": "thought-anchors",
        "source_dir": str(problem_dir),
        "answer": base.get("answer"),
        "is_correct": base.get("is_correct"),
        **{k: problem[k] for k in ("level", "type", "nickname") if k in problem},
    }
    return Trace(
        id=trace_id_for(problem_dir, root),
        problem=_field(problem, "problem", problem_dir / "problem.json"),
        prompt=base.get("prompt"),
        thinking=thinking,
        answer_text=answer_text,
        gold_answer=None if problem.get("gt_answer") is None else str(problem["gt_answer"]),
        model=_model_name(problem_dir),
        template=PAPER_TEMPLATE,
        metadata=metadata,
    )


def _field(record: Any, name: str, path: Path) -> str:
    value = record.get(name) if isinstance(record, dict) else None
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: field '{name}': missing or not a non-empty string")
    return value


def load_thought_anchors(root: str | Path) -> list[Trace]:
    """All traces under a Thought Anchors folder, ids derived from their paths below `root`."""
    root = Path(root)
    return [trace_from_problem_dir(d, root) for d in find_problem_dirs(root)]


def read_labeled_chunks(problem_dir: str | Path) -> list[dict[str, Any]] | None:
    """The authors' per-sentence records (chunks_labeled.json), or None when the folder has none."""
    path = Path(problem_dir) / "chunks_labeled.json"
    if not path.is_file():
        return None
    chunks = read_json(path)
    if not isinstance(chunks, list):
        raise InputError(f"{path}: expected a JSON list of chunk records")
    return chunks
