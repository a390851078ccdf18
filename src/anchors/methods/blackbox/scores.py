"""Black-box thought anchors for one trace: every metric of methods.md §4 per sentence, with intervals and the
anchor flag, in one result (`TraceScores`) — the library side of `anchors score`.

`score_trace(trace, sampler, template)` samples (through the rollout store when given), grades and scores;
`score_rollouts(rollouts, embedder)` scores rollouts already graded (e.g. read from the authors' files).

The anchor flag (default mode): sentence i is an anchor when the permutation test of its counterfactual KL
(D_i vs K_i answer distributions) rejects at Benjamini–Hochberg level `fdr` across the sentences of the trace.

NaN versus "not computed": a metric that was computed but is undefined for a sentence is NaN and the row's
`nan_reason` says why; a metric the run did not compute at all (forced answers off, answers not on disk) is
None in every row and listed in `TraceScores.not_computed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, create_model

from anchors.methods.blackbox.config import BlackBoxConfig, Estimate
from anchors.methods.blackbox.counterfactual import CounterfactualImportance, counterfactual_importance
from anchors.methods.blackbox.forced_answer import ForcedAnswerImportance, forced_answer_importance
from anchors.methods.blackbox.phases import PhaseTimer
from anchors.methods.blackbox.resampling import ResamplingImportance, resampling_importance
from anchors.methods.blackbox.rollout_sets import TraceRollouts
from anchors.methods.blackbox.sentence_matrix import SentenceMatrix, sentence_matrix
from anchors.metrics.fdr import benjamini_hochberg
from anchors.models.embeddings import Embedder
from anchors.rollouts.plan import chosen_sentences
from anchors.traces.segment import Sentence

SCHEMA_VERSION = 1
# Every per-sentence metric, in output order; each also has `<name>_lo` / `<name>_hi` interval columns.
METRICS = (
    "accuracy",
    "resampling_importance_accuracy",
    "resampling_importance_kl",
    "counterfactual_importance_accuracy",
    "counterfactual_importance_kl",
    "forced_accuracy",
    "forced_importance_accuracy",
    "forced_importance_kl",
    "different_trajectories_fraction",
    "overdeterminedness",
)
HEADLINE = "counterfactual_importance_kl"


class _ScoreRowBase(BaseModel):
    # NaN is written as the JSON constant NaN (Python's json, pandas and anchors read it back); null = not computed
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    schema_version: int = SCHEMA_VERSION
    trace_id: str
    index: int
    text: str
    start: int  # character span [start, end) of the sentence in the trace's thinking text
    end: int
    tag: str | None = None  # function tag (filled by the tagging step when available)
    n_resampled: int | None = None  # successful rollouts of R_i
    n_answered: int | None = None  # of those, with an answer
    n_dissimilar: int | None = None  # |D_i| (in the population the counterfactual metrics count)
    n_forced: int | None = None  # successful forced-answer rollouts F_i
    n_timeout: int | None = None  # rollouts of R_i and F_i whose grading timed out (left ungraded)
    n_error: int | None = None  # rollouts of R_i and F_i whose grading failed (a raising grader, a judge reply)
    counterfactual_p_value: float | None = None  # permutation test of counterfactual KL > 0
    counterfactual_q_value: float | None = None  # Benjamini–Hochberg adjusted across the trace's sentences
    anchor: bool | None = None
    nan_reason: str | None = None  # "metric: why" for every NaN metric of the row, joined by "; "


SentenceScore = create_model(  # type: ignore[call-overload]
    "SentenceScore",
    __base__=_ScoreRowBase,
    __doc__="One sentence's scores (a line of scores.jsonl): span, every metric of `METRICS` with `_lo`/`_hi` interval columns.",
    **{f"{m}{suffix}": (float | None, None) for m in METRICS for suffix in ("", "_lo", "_hi")},
)


@dataclass(frozen=True)
class TraceScores:
    """The scores of one trace: one row per sentence, the sentence→sentence matrix, and how they were made."""

    trace_id: str
    sentences: tuple[Sentence, ...]
    rows: tuple[Any, ...]  # SentenceScore
    matrix: SentenceMatrix | None
    config: BlackBoxConfig
    not_computed: tuple[str, ...] = ()
    run: dict[str, Any] = field(default_factory=dict)
    # per sentence index, a few distinct sentences the model wrote in its place when resampled (for the report)
    alternatives: dict[int, tuple[str, ...]] = field(default_factory=dict)
    trace: Any = field(default=None, compare=False)  # the Trace scored (None when scored from rollouts alone)

    def to_pandas(self) -> pd.DataFrame:
        """One row per sentence: index, text, tag and the headline metric first, then every other column of
        `SentenceScore` (NaN where undefined or not computed)."""
        frame = pd.DataFrame([row.model_dump() for row in self.rows]).drop(columns=["schema_version", "trace_id"])
        first = ["index", "text", "tag", HEADLINE]
        frame = frame[first + [c for c in frame.columns if c not in first]]
        return frame.set_index("index", drop=False).rename_axis(None)

    def plot(self, metric: str | None = None) -> Any:
        """The importance-per-sentence figure (plotly), as for any trace's results (anchors.results.TraceResults.plot)."""
        from anchors.results import as_trace_results  # results sit above the methods: imported on use only

        return as_trace_results(self).plot(metric)

    def top(self, k: int = 5, by: str = HEADLINE) -> pd.DataFrame:
        """The k sentences with the highest `by` (NaN last)."""
        frame = self.to_pandas()
        if by not in frame or by in self.not_computed:
            raise ValueError(f"{by!r} was not computed for {self.trace_id}; choose one of {', '.join(self.computed_metrics)}")
        return frame.sort_values(by, ascending=False, na_position="last", kind="stable").head(k)

    def values(self, metric: str) -> np.ndarray:
        """One metric as an array over sentences (for plotting)."""
        return np.array([getattr(row, metric) for row in self.rows], dtype=float)

    @property
    def computed_metrics(self) -> list[str]:
        return [m for m in METRICS if m not in self.not_computed]


def score_rollouts(
    rollouts: TraceRollouts, embedder: Embedder, config: BlackBoxConfig = BlackBoxConfig(),
    tags: Sequence[str | None] | None = None, run: dict[str, Any] | None = None, timer: PhaseTimer | None = None,
) -> TraceScores:
    """Every black-box metric of every sentence of one trace, from rollouts already graded.

    `timer`: the timer of the sampling before (its phases go into `run` with the metrics' and embedding's)."""
    timer = timer or PhaseTimer()
    embedder = timer.embedder(embedder)
    with timer.phase("metrics"):
        resampling = resampling_importance(rollouts, config) if rollouts.answers_known else None
        counterfactual = counterfactual_importance(rollouts, embedder, config)
        forced = forced_answer_importance(rollouts, config) if rollouts.has_forced and rollouts.answers_known else None
        has_sentences = any(r.sentences for p in rollouts.prefixes for r in p.resampled)
        matrix = sentence_matrix(rollouts, embedder, config) if config.matrix and has_sentences else None
        estimates = _all_estimates(resampling, counterfactual, forced)
        scored = set(chosen_sentences(rollouts.trace_id, rollouts.n, config.sentences))
        q_values, anchors = _anchor_flags(counterfactual, config, scored)
        rows = tuple(_row(rollouts, i, estimates, counterfactual, q_values, anchors, tags, config) if i in scored
                     else _unscored_row(rollouts, i, tags) for i in range(rollouts.n))
    not_computed = tuple(m for m in METRICS if m not in estimates)
    info = {**(run or {}), **timer.as_run()}
    return TraceScores(rollouts.trace_id, rollouts.sentences, rows, matrix, config, not_computed, info,
                       resampled_alternatives(rollouts))


def resampled_alternatives(rollouts: TraceRollouts, keep: int = 5) -> dict[int, tuple[str, ...]]:
    """Per sentence i, up to `keep` distinct first sentences of the rollouts resampled in its place (R_i)."""
    out = {}
    for i, prefix in enumerate(rollouts.prefixes[: rollouts.n]):
        distinct = dict.fromkeys(r.first_sentence for r in prefix.resampled if r.first_sentence)
        out[i] = tuple(distinct)[:keep]
    return out


def _all_estimates(resampling: ResamplingImportance | None, counterfactual: CounterfactualImportance,
                   forced: ForcedAnswerImportance | None) -> dict[str, Estimate]:
    named: dict[str, Estimate | None] = {
        "different_trajectories_fraction": counterfactual.different_trajectories_fraction,
        "overdeterminedness": counterfactual.overdeterminedness,
        "counterfactual_importance_accuracy": counterfactual.importance_accuracy,
        "counterfactual_importance_kl": counterfactual.importance_kl,
    }
    if resampling is not None:
        named.update(accuracy=resampling.accuracy, resampling_importance_accuracy=resampling.importance_accuracy,
                     resampling_importance_kl=resampling.importance_kl)
    if forced is not None:
        named.update(forced_accuracy=forced.forced_accuracy, forced_importance_accuracy=forced.importance_accuracy,
                     forced_importance_kl=forced.importance_kl)
    return {k: v for k, v in named.items() if v is not None}


def _anchor_flags(counterfactual: CounterfactualImportance, config: BlackBoxConfig,
                  scored: set[int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """q-values and anchor flags; the family is the sentences scored (all, or `config.sentences`)."""
    if config.paper or counterfactual.importance_kl is None or config.permutation_count == 0:
        return None, None
    p_values = np.array([p if i in scored else np.nan for i, p in enumerate(counterfactual.p_value)])
    q_values, rejected = benjamini_hochberg(p_values, config.fdr)
    return q_values, rejected


def _unscored_row(rollouts: TraceRollouts, i: int, tags: Sequence[str | None] | None) -> Any:
    """A sentence left out by `config.sentences`: its span and tag, every metric and count None (not computed)."""
    sentence = rollouts.sentences[i]
    return SentenceScore(trace_id=rollouts.trace_id, index=i, text=sentence.text, start=sentence.start,
                         end=sentence.end, tag=tags[i] if tags is not None else None)


def _row(rollouts: TraceRollouts, i: int, estimates: dict[str, Estimate], counterfactual: CounterfactualImportance,
         q_values: np.ndarray | None, anchors: np.ndarray | None, tags: Sequence[str | None] | None,
         config: BlackBoxConfig) -> Any:
    sentence, prefix = rollouts.sentences[i], rollouts.prefixes[i]
    values: dict[str, Any] = {}
    reasons = []
    for name, estimate in estimates.items():
        values[name] = _number(estimate.value[i])
        if estimate.lo is not None and estimate.hi is not None:
            values[f"{name}_lo"], values[f"{name}_hi"] = _number(estimate.lo[i]), _number(estimate.hi[i])
        if estimate.reason[i]:
            reasons.append(f"{name}: {estimate.reason[i]}")
    dissimilar = counterfactual.similarity[i] < config.similarity_threshold
    return SentenceScore(
        trace_id=rollouts.trace_id, index=i, text=sentence.text, start=sentence.start, end=sentence.end,
        tag=tags[i] if tags is not None else None, n_resampled=len(prefix.resampled),
        n_answered=sum(r.answer is not None for r in prefix.resampled) if rollouts.answers_known else None,
        n_dissimilar=int(dissimilar.sum()),
        n_forced=len(prefix.forced) if prefix.forced is not None else None,
        **_grading_failures(prefix, rollouts.answers_known),
        counterfactual_p_value=_number(counterfactual.p_value[i]) if q_values is not None else None,
        counterfactual_q_value=_number(q_values[i]) if q_values is not None else None,
        anchor=bool(anchors[i]) if anchors is not None else None,
        nan_reason="; ".join(reasons) or None, **values,
    )


def _grading_failures(prefix: Any, answers_known: bool) -> dict[str, int | None]:
    """How many rollouts of R_i and F_i the outcome could not read (timeout, error): counted, never fatal."""
    if not answers_known:
        return {"n_timeout": None, "n_error": None}
    statuses = [r.status for r in (*prefix.resampled, *(prefix.forced or ()))]
    return {"n_timeout": statuses.count("timeout"), "n_error": statuses.count("error")}


def _number(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else float("nan")


def score_trace(
    trace: Any, sampler: Any, template: Any, config: BlackBoxConfig = BlackBoxConfig(), *,
    embedder: Embedder | None = None, store: str | None = None, progress: Any = True,
    tags: Sequence[str | None] | None = None, outcome: Any = None,
) -> TraceScores:
    """Sample, grade and score one trace (`trace`: a Trace, `sampler`: a rollouts Sampler, `template`: the
    model's PromptTemplate, used when the trace has no prompt of its own; `outcome`: an `Outcome` object for
    `config.outcome`, e.g. a judge with its own client; by default built from the spec)."""
    from anchors.methods.blackbox.sampling import sample_trace_rollouts
    from anchors.models.embeddings import SentenceEmbedder

    from anchors.methods.blackbox.sampling import run_outcome
    from anchors.outcomes.spec import outcome_file_hash

    timer = PhaseTimer()
    outcome = outcome if outcome is not None else run_outcome(config, template)
    rollouts = sample_trace_rollouts(trace, sampler, template, config, store=store, progress=progress,
                                     outcome=outcome, timer=timer)
    run = {"sampler": sampler.identity, "outcome_sha256": outcome_file_hash(outcome), **rollout_counts(rollouts)}
    return replace(score_rollouts(rollouts, embedder or SentenceEmbedder(), config, tags, run, timer), trace=trace)


def rollout_counts(rollouts: TraceRollouts) -> dict[str, int]:
    """How many rollouts a score rests on: resampled, forced, failed (sampling), closed by anchors to get an
    answer, and those whose grading timed out or failed (left ungraded; the run goes on)."""
    resampled = [r for p in rollouts.prefixes for r in p.resampled]
    statuses = [r.status for p in rollouts.prefixes for r in (*p.resampled, *(p.forced or ()))]
    return {"rollouts_resampled": len(resampled),
            "rollouts_forced": sum(len(p.forced or ()) for p in rollouts.prefixes),
            "rollouts_failed": sum(p.failed for p in rollouts.prefixes),
            "rollouts_closed": sum(r.closed for r in resampled),
            "rollouts_grading_timeout": statuses.count("timeout"),
            "rollouts_grading_error": statuses.count("error")}
