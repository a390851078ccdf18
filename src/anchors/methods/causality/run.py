"""Does the trace cause the answer? All trace-level tests in one run, and the files they write.

`run_causality` runs the chosen tests (`TESTS`) on a list of traces; anchors.results.save writes each test's rows
into the traces' result folders and the summary and early-answering curve into the folder's root. The
step-validity test needs no model; every other test samples from one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from anchors.errors import InputError
from anchors.methods.causality.early_answering import (
    EarlyAnsweringConfig, EarlyAnsweringResult, early_answering,
)  # fmt: skip
from anchors.methods.causality.filler import FillerConfig, FillerResult, filler_tests
from anchors.methods.causality.hint import HintConfig, HintResult, hint_study
from anchors.methods.causality.insertions import InsertionsConfig, InsertionsResult, insertion_study
from anchors.methods.causality.mistakes import MistakesConfig, MistakesResult, inserted_mistakes
from anchors.methods.causality.paraphrase import ParaphraseConfig, Paraphraser, ParaphraseResult, paraphrase_test
from anchors.methods.causality.resilience import (
    EmbedFn, ResilienceConfig, ResilienceResult, default_embedder, resilience,
)  # fmt: skip
from anchors.methods.causality.step_validity import (
    StepValidityConfig, StepValidityResult, step_validity,
)  # fmt: skip
from anchors.methods.causality.tables import SCHEMA_VERSION
from anchors.methods.causality.sampling import TraceSampler
from anchors.traces.records import Trace
from anchors.types import Progress

# The trace-level tests run by default, and the studies (hint, insertions) run when asked for.
DEFAULT_TESTS = ("validity", "early", "filler", "mistakes", "paraphrase", "resilience")
TESTS = (*DEFAULT_TESTS, "hint", "insertions")
MODEL_TESTS = frozenset(TESTS) - {"validity"}


@dataclass(frozen=True)
class CausalityConfig:
    tests: tuple[str, ...] = DEFAULT_TESTS
    validity: StepValidityConfig = field(default_factory=StepValidityConfig)
    early: EarlyAnsweringConfig = field(default_factory=EarlyAnsweringConfig)
    filler: FillerConfig = field(default_factory=FillerConfig)
    mistakes: MistakesConfig = field(default_factory=MistakesConfig)
    paraphrase: ParaphraseConfig = field(default_factory=ParaphraseConfig)
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    hint: HintConfig = field(default_factory=HintConfig)
    insertions: InsertionsConfig = field(default_factory=InsertionsConfig)
    # the sentence positions the tests that pick positions (early, mistakes, resilience, hint, insertions) use
    sentences: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        unknown = [t for t in self.tests if t not in TESTS]
        if unknown:
            raise InputError(f"unknown test(s) {', '.join(unknown)}; choose from {', '.join(TESTS)}")

    @property
    def needs_model(self) -> bool:
        return any(t in MODEL_TESTS for t in self.tests)


@dataclass(frozen=True)
class CausalityResult:
    config: CausalityConfig
    n_traces: int
    sampler: str | None
    validity: StepValidityResult | None = None
    early: EarlyAnsweringResult | None = None
    filler: FillerResult | None = None
    mistakes: MistakesResult | None = None
    paraphrase: ParaphraseResult | None = None
    resilience: ResilienceResult | None = None
    hint: HintResult | None = None
    insertions: InsertionsResult | None = None

    def summary(self) -> dict[str, Any]:
        """Headline numbers of every test that was run (absent: not run)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "n_traces": self.n_traces, "sampler": self.sampler}
        if self.validity:
            out["validity"] = {**self.validity.summary(), "contingency": [r.model_dump() for r in self.validity.contingency()]}
        if self.early:
            out["early_answering"] = {**self.early.summary(), "buckets": self.early.buckets_frame().to_dict("records")}
        if self.filler:
            out["filler"] = self.filler.summary().to_dict("records")
        if self.mistakes:
            out["mistakes"] = _means(self.mistakes.to_pandas(), ["clean_match_rate", "corrupted_match_rate", "match_drop"])
        if self.paraphrase:
            out["paraphrase"] = _means(self.paraphrase.to_pandas(), ["original_match_rate", "paraphrase_match_rate", "match_drop"])
        if self.resilience:
            out["resilience"] = _means(self.resilience.to_pandas(), ["resilience", "ci_pp_match", "ci_pp_accuracy", "ci_pp_kl"])
        if self.hint:
            out["hint"] = self.hint.summary()
        if self.insertions:
            out["insertions"] = self.insertions.summary()
        return out

    def to_pandas(self) -> pd.DataFrame:
        """The summary flattened: one row per (test, quantity) with its value."""
        rows = []
        for test, values in self.summary().items():
            if isinstance(values, dict):
                rows.extend({"test": test, "quantity": k, "value": v} for k, v in values.items() if not isinstance(v, (list, dict)))
            elif test == "filler":  # one record per condition
                rows.extend({"test": test, "quantity": f"{r['condition']} {k}", "value": r[k]}
                            for r in values for k in ("accuracy_mean", "match_rate_mean"))
            if test == "insertions" and isinstance(values, dict):
                rows.extend({"test": test, "quantity": f"{r['condition']} {k}", "value": r[k]}
                            for r in values["conditions"] for k in ("kl_shift_mean", "match_shift_mean", "mean_logprob_mean"))
        return pd.DataFrame(rows, columns=["test", "quantity", "value"])


def run_causality(
    traces: Sequence[Trace], config: CausalityConfig = CausalityConfig(), *, sampler: TraceSampler | None = None,
    embed: EmbedFn | Any | None = None, sentence_scores: Mapping[str, Sequence[float]] | None = None,
    paraphraser: Paraphraser | None = None, progress: Progress | None = None,
    handwritten: Mapping[tuple[str, int], str] | None = None, other_traces: Mapping[str, Trace] | None = None,
) -> CausalityResult:
    """Run the chosen trace-level tests. `sampler` is needed for every test but `validity`; `embed` (texts ->
    vectors) only for resilience, hint and insertions (default: all-MiniLM-L6-v2). `handwritten` and
    `other_traces`: the insertions study's hand-written sentences and other model's traces."""
    if not traces:
        raise InputError("no traces to test")
    if config.needs_model and sampler is None:
        raise InputError(f"the tests {', '.join(t for t in config.tests if t in MODEL_TESTS)} sample from a model: pass a sampler")
    run = set(config.tests)
    results: dict[str, Any] = {}
    if "validity" in run:
        results["validity"] = step_validity(traces, config.validity, progress=progress)
    at = config.sentences
    if "early" in run:
        results["early"] = early_answering(sampler, traces, config.early, progress=progress, sentences=at)  # type: ignore[arg-type]
    if "filler" in run:
        results["filler"] = filler_tests(sampler, traces, config.filler, progress=progress)  # type: ignore[arg-type]
    if "mistakes" in run:
        results["mistakes"] = inserted_mistakes(sampler, traces, config.mistakes, progress=progress, sentences=at)  # type: ignore[arg-type]
    if "paraphrase" in run:
        results["paraphrase"] = paraphrase_test(sampler, traces, config.paraphrase, paraphraser=paraphraser, progress=progress)  # type: ignore[arg-type]
    embedder = embed if embed is not None else (default_embedder() if run & {"resilience", "hint", "insertions"} else None)
    if "resilience" in run:
        results["resilience"] = resilience(sampler, traces, embedder, config.resilience,  # type: ignore[arg-type]
                                           sentence_scores=sentence_scores, progress=progress, sentences=at)
    if "hint" in run:
        results["hint"] = hint_study(sampler, traces, embedder, config.hint, sentences=at, progress=progress)  # type: ignore[arg-type]
    if "insertions" in run:
        results["insertions"] = insertion_study(sampler, traces, embedder, config.insertions, sentences=at,  # type: ignore[arg-type]
                                                handwritten=handwritten, other_traces=other_traces, progress=progress)
    return CausalityResult(config=config, n_traces=len(traces), sampler=sampler.identity if sampler else None, **results)


def _means(table: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_rows": len(table)}
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce") if len(table) else pd.Series(dtype=float)
        out[f"{column}_mean"] = float(values.mean()) if values.notna().any() else float("nan")
    return out
