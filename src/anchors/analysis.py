"""One analysis of a set of traces: every method run into one results folder, through one rollout store, then the
reports. What `anchors analyze` runs, and what each single-method command (`score`, `label`, `receivers`, `suppress`,
`patch`, `causality`) runs for its own method — so running them one after another into one folder gives the same
folder as `analyze`.

Each `run_*` checks every trace's folder first (a conflicting earlier result is refused before any work), runs its
method, writes through the contract (anchors.results) and returns what it computed. A trace that fails is reported
through `on_error` and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchors.errors import AnchorsError, InputError
from anchors.results import ResultsDir, read_trace_results
from anchors.results import save as saving
from anchors.traces.records import Trace
from anchors.types import Progress

METHODS = ("blackbox", "tags", "receivers", "suppression", "patching", "causality")
OnError = Callable[[Trace, AnchorsError], None]


def _raise(trace: Trace, error: AnchorsError) -> None:
    raise error


@dataclass(frozen=True)
class BlackBox:
    """`anchors score`: the black-box metrics, sampled through `sampler` (see anchors.methods.blackbox.scores)."""

    config: Any  # BlackBoxConfig
    tags: str = "auto"  # auto, offline, llm or none: the function tag in each row
    adaptive: Any = None  # AdaptiveConfig, or None for a fixed number of rollouts
    outcome: Any = None  # the Outcome of config.outcome (e.g. a judge with its own client); None: built from the spec


def run_blackbox(traces: Sequence[Trace], sampler: Any, template: Any, spec: BlackBox, out: ResultsDir, *,
                 embedder: Any, on_error: OnError = _raise, on_trace: Callable[[Any], None] | None = None,
                 bar: Callable[[str], Any] | None = None) -> list[Any]:
    """Score every trace (TraceScores each), writing each as soon as it is done. `bar(trace id)` makes the one
    progress display of a trace's sampling (anchors.console.TraceBar); without it each job shows its own."""
    from anchors.methods.blackbox.adaptive import score_trace_adaptive
    from anchors.methods.blackbox.scores import score_trace

    from anchors.methods.blackbox.sampling import run_outcome
    from anchors.outcomes.spec import outcome_file_hash

    outcome = spec.outcome if spec.outcome is not None else run_outcome(spec.config, template)
    outcome.check()  # a grader module that does not load fails here, before any sampling
    settings = saving.blackbox_settings(spec.config, embedder.identity, outcome_file_hash(outcome))
    _check(out, "blackbox", traces, spec.config.mode, settings, sampler.identity)
    done = []
    for trace in traces:
        progress = bar(trace.id) if bar is not None else True
        try:
            tags = trace_tags(trace, spec.tags, spec.config.mode)
            store = str(out.store_path())
            if spec.adaptive is not None:
                scores = score_trace_adaptive(trace, sampler, template, embedder, spec.config, spec.adaptive,
                                              store=store, tags=tags, progress=progress, outcome=outcome)
            else:
                scores = score_trace(trace, sampler, template, spec.config, embedder=embedder, store=store, tags=tags,
                                     progress=progress, outcome=outcome)
        except AnchorsError as error:
            on_error(trace, error)
            continue
        finally:
            if progress is not True:
                progress.close()
        saving.save_blackbox(out, trace, scores, embedder=embedder.identity)
        done.append(scores)
        if on_trace is not None:
            on_trace(scores)
    return done


def trace_tags(trace: Trace, labeller: str, mode: str) -> list[str | None] | None:
    """Each sentence's first function tag (the sentences of `mode`), or None with labeller 'none'."""
    if labeller == "none":
        return None
    from anchors.labels import label_sentences

    return list(label_sentences(trace, labeller=labeller, mode=mode).tags)  # type: ignore[arg-type]


def run_tags(traces: Sequence[Trace], labeller: Any, mode: str, out: ResultsDir, *, progress: Progress | None = None) -> list[Any]:
    """Function tags of every trace's sentences (a resolved labeller, see anchors.labels.resolve_labeller)."""
    from anchors.labels.api import label_traces

    _check(out, "tags", traces, mode, saving.tags_settings(labeller.name, labeller.taxonomy.name), None)
    labelled = []
    for trace, labels in zip(traces, label_traces(traces, labeller=labeller, mode=mode, progress=progress)):  # type: ignore[arg-type]
        saving.save_tags(out, trace, labels, mode)  # type: ignore[arg-type]
        labelled.append(labels)
    return labelled


def run_receivers(handle: Any, traces: Sequence[Trace], config: Any, out: ResultsDir, *, progress: Progress | None = None,
                  on_error: OnError = _raise, ablation: Any = None) -> Any:
    """Receiver heads over all traces (the ranking is run-level) and each trace's scores; with `ablation` (an
    AblationConfig), then the top-K receiver heads ablated against random heads of the same layers."""
    from anchors.methods.whitebox.receivers import receiver_heads

    _check(out, "receivers", traces, config.mode, saving.config_settings(config), handle.name)
    result = receiver_heads(handle, traces, config, progress=progress, on_error=on_error)
    if result.traces:
        saving.save_receivers(out, traces, result)
        if ablation is not None:
            run_head_ablation(handle, [t for t in traces if t.id in {r.trace_id for r in result.traces}], result,
                              ablation, out, progress=progress, on_error=on_error)
    return result


def run_head_ablation(handle: Any, traces: Sequence[Trace], receivers: Any, config: Any, out: ResultsDir, *,
                      progress: Progress | None = None, on_error: OnError = _raise) -> Any:
    """Ablate the top `config.k` receiver heads (by the run's mean kurtosis) and random heads of their layers."""
    from anchors.methods.whitebox.ablation import head_ablation
    from anchors.metrics.attention import top_heads

    heads = top_heads(receivers.mean_kurtosis, config.k, receivers.config.exclude_layers)
    settings = saving.head_ablation_settings(config, heads, receivers.config)
    _check(out, "head_ablation", traces, config.mode, settings, handle.name)
    result = head_ablation(handle, traces, heads, config, progress=progress, on_error=on_error)
    if result.rows:
        saving.save_head_ablation(out, traces, result, receivers.config)
    return result


def run_suppression(handle: Any, traces: Sequence[Trace], config: Any, out: ResultsDir, *,
                    progress: Progress | None = None, on_error: OnError = _raise) -> list[Any]:
    from anchors.methods.whitebox.suppression import suppression_matrix

    _check(out, "suppression", traces, config.mode, saving.config_settings(config), handle.name)
    done = []
    for trace in traces:
        try:
            result = suppression_matrix(handle, trace, config, progress=progress)
        except AnchorsError as error:
            _reraise_unsupported(error)
            on_error(trace, error)
            continue
        saving.save_suppression(out, trace, result)
        done.append(result)
    return done


def run_patching(handle: Any, traces: Sequence[Trace], replacements: Callable[[Trace], dict[int, str]], config: Any,
                 out: ResultsDir, *, source: str | None = None, progress: Progress | None = None,
                 on_error: OnError = _raise) -> list[Any]:
    """Activation patching of each trace's sentences with the counterfactual sentences `replacements(trace)`."""
    from anchors.methods.whitebox.patching import activation_patching

    _check(out, "patching", traces, config.mode, saving.config_settings(config, replacements=source), handle.name)
    done = []
    for trace in traces:
        try:
            result = activation_patching(handle, trace, replacements(trace), config, progress=progress)
        except AnchorsError as error:
            _reraise_unsupported(error)
            on_error(trace, error)
            continue
        saving.save_patching(out, trace, result, source)
        done.append(result)
    return done


@dataclass(frozen=True)
class InsertionInputs:
    """The insertions study's own inputs: hand-written sentences by (trace id, position), other model's traces by
    trace id, and what identifies them in the settings (their files' sha256)."""

    handwritten: Any = None  # Mapping[tuple[str, int], str]
    other_traces: Any = None  # Mapping[str, Trace]
    identity: Any = None  # Mapping[str, str | None]


def run_causality_tests(traces: Sequence[Trace], config: Any, out: ResultsDir, *, sampler: Any = None,
                        importance: str | None = None, progress: Progress | None = None,
                        insertions: InsertionInputs = InsertionInputs(), embed: Any = None) -> Any:
    """The trace-level tests (anchors.methods.causality.run); `importance` picks resilience's sentences by a
    per-sentence column of the results folder (e.g. counterfactual_importance_kl) or 'ta' (the authors').
    The tests read answers with the sampler's outcome (`TraceSampler.outcome`), recorded in their settings;
    `embed`: the sentence embedder of resilience, hint and insertions (default all-MiniLM-L6-v2)."""
    from anchors.methods.causality.hint import CUED_SUFFIX
    from anchors.methods.causality.run import run_causality
    from anchors.outcomes import outcome_settings

    outcome = outcome_settings(sampler.outcome) if sampler is not None else None
    model = sampler.identity if sampler is not None else None
    for test in config.tests:
        settings = saving.causality_settings(config, test, importance, outcome, insertions.identity)
        _check(out, saving.causality_kind(test), traces, "default", settings, model)
        if test == "hint":
            _check_derived(out, "hint", [t.id + CUED_SUFFIX for t in traces], settings, model)
    scores = sentence_scores(importance, traces, out) if "resilience" in config.tests else None
    result = run_causality(traces, config, sampler=sampler, sentence_scores=scores, progress=progress, embed=embed,
                           handwritten=insertions.handwritten, other_traces=insertions.other_traces)
    saving.save_causality(out, traces, result, importance=importance, outcome=outcome, inputs=insertions.identity)
    return result


def _check_derived(out: ResultsDir, kind: str, trace_ids: Sequence[str], settings: dict[str, Any], model: str | None) -> None:
    """Folders a study derives (the hint study's cued traces) hold a trace not known before the work: refuse only
    results of the same kind made with other settings (their trace is then sampled anew)."""
    from anchors.results.contract import ResultsConflict, settings_hash

    for trace_id in trace_ids:
        manifest = out.trace_manifest(trace_id)
        entry = manifest.methods.get(kind) if manifest is not None else None
        if entry is not None and entry.settings_hash != settings_hash(settings, model) and not out.overwrite:
            raise ResultsConflict(f"{out.trace_dir(trace_id)}: has {kind} results made with other settings; pass "
                                  "--overwrite to replace them (the cued trace is sampled anew), or give another --out")


def sentence_scores(importance: str | None, traces: Sequence[Trace], out: ResultsDir) -> dict[str, list[float]] | None:
    """Per trace, one score per (default-mode) sentence: the column `importance` of each trace's results in `out`,
    or the authors' counterfactual importance ('ta'); None: resilience picks evenly spaced sentences."""
    if importance is None:
        return None
    if importance.endswith(".jsonl"):
        return read_importance(Path(importance))
    if importance == "ta":
        from anchors.methods.causality.resilience import importance_from_thought_anchors

        scores = importance_from_thought_anchors(traces)
        if not scores:
            raise InputError("--importance ta: none of the traces comes with the authors' chunks_labeled.json (use --from-ta DIR)")
        return scores
    found = {}
    for trace in traces:
        manifest = out.trace_manifest(trace.id)
        if manifest is None:
            continue
        if manifest.mode != "default":
            raise InputError(f"--importance {importance}: {out.trace_dir(trace.id)} holds {manifest.mode}-mode sentences; "
                             "resilience needs default-mode ones (score it without --mode paper)")
        table = read_trace_results(out.trace_dir(trace.id)).sentences
        if importance not in table.columns:
            have = ", ".join(c for c in table.columns if c not in ("index", "text", "tag", "start", "end"))
            raise InputError(f"--importance {importance}: no such column for {trace.id} in {out.root} (have: {have})")
        found[trace.id] = table[importance].astype(float).tolist()
    if not found:
        raise InputError(f"--importance {importance}: no results for these traces in {out.root}; run anchors score "
                         f"--out {out.root} first")
    return found


def write_reports(out: ResultsDir, trace_ids: Sequence[str]) -> list[Path]:
    """Each trace's report.html (everything its folder holds), the reports of the folders a study derived from
    it (the hint study's cued trace, `<trace id>.cued`), and the folder's index.html."""
    from anchors.methods.causality.hint import CUED_SUFFIX
    from anchors.report.html import write_index, write_report

    folders = dict.fromkeys(f for t in trace_ids for f in (t, t + CUED_SUFFIX))
    written = [write_report(read_trace_results(out.trace_dir(t)), out.report_path(t)) for t in folders
               if out.trace_manifest(t) is not None]
    if written:
        write_index(out)
    return written


def _check(out: ResultsDir, kind: str, traces: Sequence[Trace], mode: str, settings: dict[str, Any],
           model: str | None) -> None:
    out.check_writable()
    for trace in traces:
        out.check(kind, trace, mode, settings, model)  # type: ignore[arg-type]


def _reraise_unsupported(error: AnchorsError) -> None:
    """A model the white-box hooks cannot run would fail every trace: that one stops the run."""
    from anchors.models.hooks import UnsupportedModelError

    if isinstance(error, UnsupportedModelError):
        raise error


@dataclass(frozen=True)
class Analysis:
    """`anchors analyze`: which methods, each one's settings (None: that method is not run)."""

    blackbox: BlackBox | None = None
    tags: Any = None  # a resolved labeller
    tags_mode: str = "default"
    receivers: Any = None  # ReceiverConfig
    suppression: Any = None  # SuppressionConfig
    patching: Any = None  # PatchingConfig
    replacements: Callable[[Trace], dict[int, str]] | None = None  # patching's T_i (default: from the rollouts)
    causality: Any = None  # CausalityConfig
    importance: str | None = None
    outcome: str = "math"  # the outcome spec every sampling method reads answers with


def analyze(traces: Sequence[Trace], analysis: Analysis, out: ResultsDir, *, handle: Any, sampler: Any, template: Any,
            embedder: Any, trace_sampler: Any = None, progress: Progress | None = None,
            on_error: OnError = _raise, bar: Callable[[str], Any] | None = None) -> list[Path]:
    """Every chosen method on every trace into `out` (one model, one store), then the reports.

    The sampling methods (black box, causality tests) run before the white-box ones: those wrap the model in the
    TransformerLens bridge, whose attention modules compute attention themselves, and the engine refuses a
    wrapped model (its shared-prefix attention would be bypassed)."""
    if analysis.blackbox is not None:
        run_blackbox(traces, sampler, template, analysis.blackbox, out, embedder=embedder, on_error=on_error, bar=bar)
    if analysis.tags is not None:
        run_tags(traces, analysis.tags, analysis.tags_mode, out, progress=progress)
    if analysis.causality is not None:
        run_causality_tests(traces, analysis.causality, out, sampler=trace_sampler, importance=analysis.importance,
                            progress=progress, embed=embedder)
    if analysis.receivers is not None:
        run_receivers(handle, traces, analysis.receivers, out, progress=progress, on_error=on_error)
    if analysis.suppression is not None:
        run_suppression(handle, traces, analysis.suppression, out, on_error=on_error)
    if analysis.patching is not None:
        replacements = analysis.replacements or rollout_replacements(out)
        run_patching(handle, traces, replacements, analysis.patching, out, source="rollouts", on_error=on_error)
    return write_reports(out, [t.id for t in traces])


def rollout_replacements(out: ResultsDir) -> Callable[[Trace], dict[int, str]]:
    """Patching's counterfactual T_i from the black-box run in `out`: the first resampled sentence that differs."""
    from anchors.methods.whitebox.replacements import pick_replacement

    def replacements(trace: Trace) -> dict[int, str]:
        folder = out.trace_dir(trace.id)
        results = read_trace_results(folder) if out.trace_manifest(trace.id) else None
        if results is None or not results.alternatives:
            raise InputError(f"trace {trace.id!r}: no resampled sentences in {folder} to patch with; run the black-box "
                             "method first (anchors score), or give --replacements FILE")
        picked = {i: pick_replacement(text, results.alternatives.get(i, [])) for i, text in enumerate(results.texts())}
        return {i: t for i, t in picked.items() if t is not None}

    return replacements


def read_importance(path: Path) -> dict[str, list[float]]:
    """trace id -> scores by sentence index, from JSONL lines {trace_id, sentence_index, score}; missing
    sentences get NaN (never chosen)."""
    from anchors.traces.jsonl import jsonl_values

    if not path.is_file():
        raise InputError(f"{path}: no such importance file")
    found: dict[str, dict[int, float]] = {}
    for where, record in jsonl_values(path):
        try:
            found.setdefault(str(record["trace_id"]), {})[int(record["sentence_index"])] = float(record["score"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where}: expected {{\"trace_id\", \"sentence_index\", \"score\"}} ({exc})") from None
    return {trace: [scores.get(i, float("nan")) for i in range(max(scores) + 1)] for trace, scores in found.items()}
