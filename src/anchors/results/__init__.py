"""Results folders: the one on-disk contract every method writes and the report, figures and notebooks read.

`ResultsDir(root)` checks and writes (`anchors.results.save` has one `save_*` per method); `read_results(root)`
and `read_trace_results(folder)` read a folder into `TraceResults`; `write_results(result, root)` writes numbers
of your own. The layout is documented in `anchors.results.kinds`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anchors.results.contract import ResultsConflict, ResultsDir
from anchors.results.read import read_results, read_trace_results
from anchors.results.trace import TraceResults, pooled_sentences

__all__ = ["ResultsConflict", "ResultsDir", "TraceResults", "as_trace_results", "pooled_sentences", "read_results",
           "read_trace_results", "write_results"]


def as_trace_results(result: Any) -> TraceResults:
    """Any one trace's result as a TraceResults: itself, or a TraceScores (from `score_trace`, `score_rollouts`)
    with its sentence table, matrix and alternatives, so reports, figures and `.plot()` take either."""
    if isinstance(result, TraceResults):
        return result
    if not hasattr(result, "rows") or not hasattr(result, "alternatives"):
        raise TypeError(f"expected a TraceResults or TraceScores, not {type(result).__name__}")
    trace = getattr(result, "trace", None)
    info = {"id": result.trace_id, "model": result.run.get("sampler")}
    if trace is not None:
        info.update(problem=trace.problem, gold_answer=trace.gold_answer, model=trace.model or info["model"])
    matrices = {"resampling": result.matrix.matrix} if result.matrix is not None else {}
    return TraceResults(trace_id=result.trace_id, sentences=result.to_pandas().reset_index(drop=True), matrices=matrices,
                        alternatives={k: list(v) for k, v in result.alternatives.items()}, methods=("blackbox",), info=info)


def write_results(result: Any, root: str | Path, *, trace: Any = None, overwrite: bool = False) -> Path:
    """Write one trace's results into the results folder `root` (its folder `root/<trace id>/` is returned):
    a TraceScores from `score_trace` as black-box results (its trace, or `trace=`, names the folder), or any
    TraceResults (e.g. numbers of your own) as a table the report and figures show."""
    from anchors.results.save import save_blackbox, save_table

    out = ResultsDir(root, overwrite=overwrite)
    if isinstance(result, TraceResults):
        return save_table(out, result, trace)
    trace = trace if trace is not None else getattr(result, "trace", None)
    if trace is None:
        raise TypeError("write_results: pass trace= (the Trace these scores belong to) or a TraceResults")
    return save_blackbox(out, trace, result, embedder=result.run.get("embedder"))
