"""Writing a TraceResults in the result-folder layout that `anchors.report.results.read_trace_results` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from anchors.report.results import MATRIX_FILES, TraceResults


def write_trace_results(results: TraceResults, folder: str | Path) -> Path:
    """Write `results` in the layout `read_trace_results` reads (the module docstring's table), so any method
    can hand its numbers to the figures and the report by filling a TraceResults."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results.sentences.drop(columns=["trace_id", "model"], errors="ignore").to_csv(folder / "scores.csv", index=False)
    for name, filename in MATRIX_FILES.items():
        if name in results.matrices:
            np.savez_compressed(folder / filename, matrix=np.asarray(results.matrices[name], dtype=float))
    if results.head_scores is not None:
        arrays = {"kurtosis": np.asarray(results.head_scores, dtype=float)}
        if results.vertical_scores is not None:
            arrays["vertical_scores"] = np.asarray(results.vertical_scores, dtype=float)
        if results.receiver_heads:
            arrays["receiver_heads"] = np.asarray(results.receiver_heads, dtype=int).reshape(-1, 2)
        np.savez_compressed(folder / "receivers.npz", **arrays)
    if results.early_answering is not None:
        results.early_answering.to_csv(folder / "early_answering.csv", index=False)
    if results.alternatives:
        _write_json(folder / "alternatives.json", {str(k): list(v) for k, v in results.alternatives.items()})
    info = {k: v for k, v in results.info.items() if k not in ("results_dir", "run")}
    _write_json(folder / "trace.json", {"id": results.trace_id, **info})
    if results.info.get("run"):
        _write_json(folder / "run.json", results.info["run"])
    return folder


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
