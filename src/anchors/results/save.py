"""Each method's result written through the contract: one `save_*` per result kind, and the settings each kind is
recorded (and compared) with, computable before the work so a conflicting rerun is refused at once.

File names come from `anchors.results.contract`; the array orientations it documents are produced here (the
suppression method computes [target, source]; the contract stores [source, target]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anchors.results.contract import ResultsDir, RowsWriter, finite, json_writer, npz_writer
from anchors.results.kinds import TESTS
from anchors.traces.records import Trace
from anchors.traces.segment import Mode


def config_settings(config: Any, **extra: Any) -> dict[str, Any]:
    """A method config (frozen dataclass) as JSON-ready settings, plus anything else that decides the results."""
    values = config.resolved() if hasattr(config, "resolved") else dataclasses.asdict(config)
    return _plain({**values, **extra})


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- black box ---------------------------------------------------------------------------------------


def blackbox_settings(config: Any, embedder: str | None, outcome_sha256: str | None = None) -> dict[str, Any]:
    """The config (its `outcome` spec included), the embedder, and the sha256 of the file defining the outcome
    (a rubric, a class file, a grader module): a changed rubric is then a settings conflict."""
    return config_settings(config, embedder=embedder, outcome_sha256=outcome_sha256)


def save_blackbox(out: ResultsDir, trace: Trace, scores: Any, *, embedder: str | None, source: str | None = None) -> Path:
    """A TraceScores (anchors.methods.blackbox.scores): the per-sentence rows, the sentence matrix, the alternatives."""
    rows = [_score_row(row) for row in scores.rows]
    computed = [c for c in (rows[0] if rows else {}) if c == "tag" or any(r[c] is not None for r in rows)]
    files: dict[str, Any] = {"rows": RowsWriter(rows, computed)}  # the CSV leaves out what was not computed
    if scores.matrix is not None:
        files["matrix"] = npz_writer(matrix=scores.matrix.matrix, match_rate=scores.matrix.match_rate)
    files["alternatives"] = json_writer({str(i): list(t) for i, t in scores.alternatives.items()})
    run = dict(scores.run)
    summary = {"not_computed": list(scores.not_computed), "source": source,
               "counts": {k: int(v) for k, v in run.items() if k.startswith("rollouts_")},
               "timing": {k: float(v) for k, v in run.items() if k.endswith("_seconds")},
               **{k: v for k, v in run.items() if k != "sampler" and not k.startswith("rollouts_") and not k.endswith("_seconds")}}
    settings = blackbox_settings(scores.config, embedder, run.get("outcome_sha256"))
    return out.write("blackbox", trace, scores.config.mode, settings, run.get("sampler"), files, summary=summary)


def _score_row(row: Any) -> dict[str, Any]:
    record = row.model_dump()  # floats stay floats: NaN (undefined) is kept apart from None (not computed)
    record.pop("schema_version", None)
    record.pop("trace_id", None)
    return record


# --- tags --------------------------------------------------------------------------------------------


def tags_settings(labeller: str, taxonomy: str) -> dict[str, Any]:
    return {"labeller": labeller, "taxonomy": taxonomy}


def save_tags(out: ResultsDir, trace: Trace, labels: Any, mode: Mode) -> Path:
    """A SentenceLabels (anchors.labels): one row per sentence with its tags and dependencies."""
    rows = []
    for i, (text, tags) in enumerate(zip(labels.sentences, labels.all_tags)):
        rows.append({"index": i, "text": text, "tag": tags[0], "tags": list(tags),
                     "depends_on": list(labels.depends_on[i]) if labels.depends_on is not None else None,
                     "confidence": labels.confidence[i] if labels.confidence is not None else None})
    return out.write("tags", trace, mode, tags_settings(labels.labeller, labels.taxonomy.name), None, {"rows": RowsWriter(rows)},
                     summary={"warnings": list(labels.warnings)})


# --- white box ---------------------------------------------------------------------------------------


def save_receivers(out: ResultsDir, traces: Sequence[Trace], result: Any) -> list[Path]:
    """A ReceiverHeadsResult: each trace's arrays, and the run-level head ranking (chosen over these traces)."""
    settings, by_id = config_settings(result.config), {t.id: t for t in traces}
    heads = [list(h) for h in result.heads]
    written = []
    for part in result.traces:
        files = {"arrays": npz_writer(vertical=part.vertical, kurtosis=part.kurtosis, receiver_scores=part.scores,
                                      receiver_attention=part.receiver_attention)}
        meta = {"receiver_heads": heads, "token_spans": [list(s) for s in part.spans]}
        written.append(out.write("receivers", by_id[part.trace_id], result.config.mode, settings, result.model, files,
                                 meta=meta))
    layers, n_heads = result.mean_kurtosis.shape
    out.write_run("receiver_heads", settings, result.model,
                  {"arrays": npz_writer(mean_kurtosis=result.mean_kurtosis, kurtosis=result.kurtosis)},
                  summary={"reliability": result.reliability},
                  meta={"receiver_heads": heads, "trace_ids": [t.trace_id for t in result.traces], "n_layers": layers,
                        "n_heads": n_heads})
    return written


def head_ablation_settings(config: Any, heads: Sequence[tuple[int, int]], receivers: Any) -> dict[str, Any]:
    """The ablation's settings, the heads it ablated and the receiver settings that chose them."""
    return config_settings(config, heads=[list(h) for h in heads], receivers=config_settings(receivers))


def save_head_ablation(out: ResultsDir, traces: Sequence[Trace], result: Any, receivers: Any) -> list[Path]:
    """A HeadAblationResult: each trace's rows (receivers, random draws), and the run-level summary."""
    settings, by_trace = head_ablation_settings(result.config, result.heads, receivers), _by_trace(result.rows)
    written = [out.write("head_ablation", trace, result.config.mode, settings, result.model,
                         {"rows": RowsWriter(by_trace[trace.id])}) for trace in traces if trace.id in by_trace]
    out.write_run("head_ablation", settings, result.model, {"summary": json_writer(finite(result.summary()))},
                  summary=finite(result.summary()))
    return written


def save_suppression(out: ResultsDir, trace: Trace, result: Any) -> Path:
    """A SuppressionResult, transposed to the contract's [source, target]."""
    files = {"arrays": npz_writer(raw=np.asarray(result.raw).T, normalised=np.asarray(result.normalised).T,
                                  answer=result.answer)}
    meta = {"token_spans": [list(s) for s in result.spans], "answer_span": list(result.answer_span)}
    return out.write("suppression", trace, result.config.mode, config_settings(result.config), result.model, files,
                     meta=meta)


def save_patching(out: ResultsDir, trace: Trace, result: Any, replacements_source: str | None = None) -> Path:
    """A PatchingResult: [site, layer, sent] effects and each sentence's own-swap effect."""
    files = {"arrays": npz_writer(kl=result.kl, logprob_delta=result.logprob_delta, total_kl=result.total_kl,
                                  total_logprob_delta=result.total_logprob_delta, patched_tokens=result.patched_tokens)}
    meta = {"sites": list(result.sites), "answer": result.answer, "replacements": list(result.replacements)}
    return out.write("patching", trace, result.config.mode, config_settings(result.config, replacements=replacements_source),
                     result.model, files, meta=meta)


# --- the trace-level tests ---------------------------------------------------------------------------

def causality_settings(config: Any, test: str, importance: str | None = None,
                       outcome: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A test's settings, with what else decides its numbers: the outcome (spec and file hash; the step-validity
    test reads math answers only), `sentences` where it picks positions, resilience's `importance`, and
    `inputs` (the insertions study's hand-written sentences and other model's traces, by content hash)."""
    extra: dict[str, Any] = {"importance": importance} if test == "resilience" else {}
    if test != "validity":
        extra.update(outcome or {"outcome": "math", "outcome_sha256": None})
    if TESTS[test].positioned:
        extra["sentences"] = list(config.sentences) if config.sentences is not None else None
    if test == "insertions":
        extra.update(inputs or {})
    return config_settings(getattr(config, test), **extra)  # CausalityConfig has one config per test, by its name


def causality_kind(test: str) -> str:
    """The result kind a `--tests` name writes (early -> early_answering)."""
    return TESTS[test].name


def save_causality(out: ResultsDir, traces: Sequence[Trace], result: Any, *, importance: str | None = None,
                   outcome: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None) -> list[Path]:
    """A CausalityResult: each test's rows split into the traces' folders (with each trace's summary row), and
    the run-level summary and early-answering curve in the root. The hint study's rows go to the folders of the
    cued traces it sampled (`<trace id>.cued`), whose sentences they are."""
    written: list[Path] = []
    for test in result.config.tests:
        part = getattr(result, test)
        if part is None:
            continue
        settings = causality_settings(result.config, test, importance, outcome, inputs)
        if test == "hint":
            written += _save_hint(out, part, settings, result.sampler)
            continue
        rows, claims, summaries = _test_rows(test, part)
        for trace in traces:
            files: dict[str, Any] = {"rows": RowsWriter(rows.get(trace.id, []))}
            if test == "validity":
                files["claims"] = RowsWriter(claims.get(trace.id, []))
            written.append(out.write(causality_kind(test), trace, "default", settings, result.sampler, files,
                                     summary=summaries.get(trace.id, {})))
    files = {"summary": json_writer(finite(result.summary()))}
    if result.early is not None:
        curve = result.early.curve()
        files["curve"] = npz_writer(trace_ids=np.array(curve["trace_ids"], dtype=str),
                                    **{k: np.asarray(v, dtype=float) for k, v in curve.items()
                                       if k not in ("trace_ids", "schema_version")})
    out.write_run("causality", config_settings(result.config), result.sampler, files, summary={"n_traces": result.n_traces})
    return written


def _save_hint(out: ResultsDir, part: Any, settings: dict[str, Any], sampler: str | None) -> list[Path]:
    sentences, transplant, summaries = _by_trace(part.sentences), _by_trace(part.transplant), _summary_rows(part.traces)
    written = []
    for cued in part.cued_traces:
        _replace_derived(out, cued)
        files = {"rows": RowsWriter(sentences.get(cued.id, [])), "transplant": RowsWriter(transplant.get(cued.id, []))}
        written.append(out.write("hint", cued, "default", settings, sampler, files, summary=summaries.get(cued.id, {})))
    return written


def _replace_derived(out: ResultsDir, trace: Trace) -> None:
    """A cued trace sampled anew (other settings, with --overwrite) replaces the folder of the one sampled before:
    that folder holds nothing but what the study derived from it."""
    import shutil

    manifest = out.trace_manifest(trace.id)
    if out.overwrite and manifest is not None and manifest.trace.get("thinking") != trace.thinking:
        shutil.rmtree(out.trace_dir(trace.id))


def _test_rows(test: str, part: Any) -> tuple[dict[str, list], dict[str, list], dict[str, dict]]:
    """(rows by trace, claims by trace, per-trace summary row by trace) of one test's result."""
    if test == "validity":
        return _by_trace(part.sentences), _by_trace(part.claims), _summary_rows(part.traces)
    if test == "early":
        return _by_trace(part.points), {}, _summary_rows(part.traces)
    if test == "mistakes":
        return _by_trace(part.sentences), {}, _summary_rows(part.traces)
    return _by_trace(part.rows), {}, {}


def _by_trace(rows: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        record = row.model_dump()  # floats stay floats: NaN is written as NaN
        trace_id = record.pop("trace_id")
        record.pop("schema_version", None)
        out.setdefault(trace_id, []).append(record)
    return out


def _summary_rows(rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
    return {trace_id: records[0] for trace_id, records in _by_trace(rows).items()}


# --- your own numbers ----------------------------------------------------------------------------------


def save_table(out: ResultsDir, results: Any, trace: Trace | None = None) -> Path:
    """A TraceResults of your own (any per-sentence columns, matrices, receiver arrays, an early-answering table)
    as the `table` kind, so the report and figures show it next to anything else in the folder."""
    arrays: dict[str, Any] = {f"matrix_{name}": m for name, m in results.matrices.items()}
    if results.head_scores is not None:
        arrays["head_scores"] = results.head_scores
    if results.vertical_scores is not None:
        arrays["vertical_scores"] = results.vertical_scores
    if results.receiver_heads:
        arrays["receiver_heads"] = np.asarray(results.receiver_heads, dtype=int).reshape(-1, 2)
    files: dict[str, Any] = {"metrics": lambda path: results.sentences.drop(columns=["trace_id", "model"], errors="ignore")
                             .to_csv(path, index=False)}
    if arrays:
        files["matrices"] = npz_writer(**arrays)
    if results.early_answering is not None:
        files["early"] = lambda path: results.early_answering.to_csv(path, index=False)
    trace = trace or _stand_in_trace(results)
    meta = {"alternatives": {str(k): list(v) for k, v in results.alternatives.items()},
            "info": {k: v for k, v in results.info.items() if k not in ("results_dir", "trace")}}
    return out.write("table", trace, "default", {"columns": [str(c) for c in results.sentences.columns]}, None, files,
                     meta=meta)


def _stand_in_trace(results: Any) -> Trace:
    """A trace record for numbers that came without one: the sentences joined, the recorded problem and answer."""
    info = results.info
    texts = [str(t) for t in results.sentences["text"]] if "text" in results.sentences.columns else []
    return Trace(id=results.trace_id, problem=str(info.get("problem") or "(not recorded)"),
                 thinking=" ".join(texts) or "(not recorded)", answer_text=str(info.get("answer") or "(not recorded)"),
                 gold_answer=None if info.get("gold_answer") is None else str(info["gold_answer"]),
                 model=None if info.get("model") is None else str(info["model"]))
