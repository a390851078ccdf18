"""A Thought Anchors folder built at test time from the authors' released data, cut short (so tiny models can read
each trace) and with one kind of damage per trace; the tests run every `--from-ta` command on it.

Nothing is copied into the repository: the folder is written under pytest's tmp_path from ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

from anchors.traces.segment import split_sentences

SENTENCES = 12  # sentences kept per trace: short enough for tiny-qwen2's 2,048-token context
ALTERNATIVES = 4  # resampled first sentences kept per sentence

# trace folder -> (file, damage); the first folder stays intact, the last has a damaged optional file only.
DAMAGE = {
    "problem_330": None,
    "problem_1591": ("base_solution.json", "empty"),
    "problem_2236": ("chunks_labeled.json", "truncated"),
    "problem_2238": ("problem.json", "missing"),
    "problem_6998": ("base_solution.json", "wrong_type"),
    "problem_330_short": ("chunks_labeled.json", "short"),
    "problem_1591_matrix": ("step_importance.json", "empty"),
}
SOURCE = {"problem_330_short": "problem_330", "problem_1591_matrix": "problem_1591"}
GROUP = "deepseek-r1-distill-llama-8b/correct_base_solution"


def trace_id(folder: str) -> str:
    return f"{GROUP.replace('/', '--')}--{folder}"


def build(shared: Path, root: Path) -> Path:
    """Write the damaged folder under `root` (returned)."""
    for name, damage in DAMAGE.items():
        source = shared / GROUP / SOURCE.get(name, name)
        target = root / GROUP / name
        target.mkdir(parents=True)
        _write_short(source, target)
        if damage:
            _damage(target / damage[0], damage[1])
    return root


def _write_short(source: Path, target: Path) -> None:
    base = json.loads((source / "base_solution.json").read_text(encoding="utf-8"))
    thinking, close, answer = base["solution"].partition("</think>")
    cut = thinking[: split_sentences(thinking, mode="paper")[SENTENCES - 1].end]
    assert [s.text for s in split_sentences(cut, mode="paper")] == [s.text for s in split_sentences(thinking, mode="paper")[:SENTENCES]]
    base["solution"] = cut + close + answer
    base["full_cot"] = (base.get("prompt") or "") + base["solution"]
    _dump(target / "base_solution.json", base)
    _dump(target / "problem.json", json.loads((source / "problem.json").read_text(encoding="utf-8")))
    chunks = json.loads((source / "chunks_labeled.json").read_text(encoding="utf-8"))
    _dump(target / "chunks_labeled.json", [c for c in chunks if c["chunk_idx"] < SENTENCES])
    resampled = json.loads((source / "chunks_resampled.json").read_text(encoding="utf-8"))
    _dump(target / "chunks_resampled.json", {k: v[:ALTERNATIVES] for k, v in resampled.items() if int(k) < SENTENCES})
    matrix = json.loads((source / "step_importance.json").read_text(encoding="utf-8"))
    kept = [{**row, "target_impacts": [t for t in row["target_impacts"] if t["target_chunk_idx"] < SENTENCES]}
            for row in matrix if row["source_chunk_idx"] < SENTENCES]
    _dump(target / "step_importance.json", kept)


def _damage(path: Path, kind: str) -> None:
    if kind == "empty":
        path.write_text("")
    elif kind == "truncated":
        text = path.read_text(encoding="utf-8")
        path.write_text(text[: len(text) // 2])
    elif kind == "missing":
        path.unlink()
    elif kind == "wrong_type":
        record = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**record, "solution": 42}))
    elif kind == "short":
        chunks = json.loads(path.read_text(encoding="utf-8"))
        _dump(path, chunks[:-2])


def _dump(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
