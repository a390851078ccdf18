"""The result kinds: one row per method's results, the one place that names result files and says how the rest
of anchors treats each kind — the command that fills it, the per-sentence columns the reader puts into the
sentence table (with their readable names), whether it is an importance the agreement panel compares, whether it
is a study (asked for, not expected on every trace), its `anchors causality --tests` name, and the report panels
it fills. The reader, the writer, the report and the figures derive their tables from these rows, so a new method
that writes one table is its module plus one row here (see docs/design.md, "Where a new method goes").

```
RESULTS/                        --out of every command (default results/)
  manifest.json                 RunManifest: the traces, and run-level results (receiver heads, causality summary)
  receiver_heads.npz            mean_kurtosis [layer, head], kurtosis [trace, layer, head]
  causality_summary.json        headline numbers of the trace-level tests over all traces
  early_answering_curve.npz     x, match_mean, match_se, accuracy_mean, … [x]; match_per_trace [trace, x]
  head_ablation_summary.json    receiver-head ablation over all traces: receivers vs random heads of the same layers
  rollouts.sqlite               the rollout store every sampling command shares (default)
  index.html                    one row per trace, linking each report
  <trace id>/
    manifest.json               TraceManifest: the trace, its sentences (text, character span), which methods ran
                                with which settings and model, their files, created/updated times
    scores.jsonl, scores.csv    blackbox: one row per sentence, every metric with its interval
    sentence_matrix.npz         blackbox: matrix [source, target], match_rate [prefix, sent]
    alternatives.json           blackbox: {"<index>": [resampled first sentences]}
    tags.jsonl                  tags: index, tag, tags, depends_on, confidence
    receivers.npz               receivers: vertical [layer, head, sent], kurtosis [layer, head],
                                receiver_scores [sent], receiver_attention [k, sent(query), sent(key)]
    suppression.npz             suppression: raw, normalised [source, target], answer [source]
    patching.npz                patching: kl, logprob_delta [site, layer, sent]; total_kl, total_logprob_delta,
                                patched_tokens [sent]
    validity_sentences.jsonl    validity: one row per sentence; validity_claims.jsonl: one row per claim
    early_answering.jsonl       early_answering: one row per truncation point
    filler.jsonl, mistakes.jsonl, paraphrase.jsonl, resilience.jsonl   one row per condition / tested sentence
    hint.jsonl, hint_transplant.jsonl   hint (in a cued trace's folder, <trace id>.cued): one row per sentence of
                                the cued trace (cued share of R_i, importance, mentions of the cue); one per
                                transplant point (share of cued answers with the first k sentences in the uncued prompt)
    insertions.jsonl            insertions: one row per (position, condition): answer shift, mean token log-probability
    head_ablation.jsonl         head_ablation: one row per ablated head set (receivers, random draws): KL, p(answer)
    metrics.csv, matrices.npz   table: per-sentence numbers, [source, target] matrices, receiver arrays of your own
    early_answering_table.csv   table: your early-answering curve (fraction, agreement, …)
    report.html                 the report of everything above
```
Every sentence×sentence array is [source, target]: row = the sentence removed, resampled or suppressed, column = the
sentence it affects. Each `.jsonl` table has a `.csv` twin. JSON records carry `schema_version`; arrays are float64
(.npz, read with allow_pickle=False); NaN = undefined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MANIFEST, REPORT, INDEX = "manifest.json", "report.html", "index.html"
# What anchors 0.1 wrote before this contract: recognised only to say how to move on.
LEGACY_FILES = ("run.json", "scores.jsonl", "receivers.json", "suppression.json", "patching.json",
                "early_answering_points.jsonl", "summary.json")


@dataclass(frozen=True)
class Panel:
    """One card of the per-trace report. With `columns` it shows the kind's rows as a table (`title` above it);
    without, `report/figures.py` has a builder of that name. `axis` is how the plot shows sentences, so the report
    can highlight the selected one (sentence-points, sentence-table, …); a table that lists `sentence_index` is a
    sentence-table unless told otherwise."""

    name: str
    card: str
    columns: tuple[str, ...] = ()
    title: str = ""
    axis: str | None = None

    @property
    def sentence_axis(self) -> str | None:
        if self.axis is not None:
            return self.axis
        return "sentence-table" if "sentence_index" in self.columns else None


@dataclass(frozen=True)
class ResultKind:
    """How anchors treats one kind of result (see the module docstring)."""

    name: str
    files: Mapping[str, str]  # role -> file name in the trace folder; "rows" tables also get a .csv twin
    command: str  # what fills it, named where its panel is empty or it is missing
    columns: Mapping[str, str] = field(default_factory=dict)  # rows column -> sentence-table column
    labels: Mapping[str, str] = field(default_factory=dict)  # sentence-table column -> readable name
    importances: tuple[str, ...] = ()  # its sentence-table columns the agreement panel compares
    tables: Mapping[str, str] = field(default_factory=dict)  # more tables of TraceResults.tables: name -> role
    average: bool = True  # several rows for one sentence: their mean goes into the sentence table
    study: bool = False  # asked for on purpose: not listed as missing, its panels shown only when it ran
    test: str | None = None  # its name in `anchors causality --tests` (a trace-level test)
    positioned: bool = False  # a test whose positions `--sentences` restricts (recorded in its settings)
    panels: tuple[Panel, ...] = ()


def _test(name: str, test: str | None = None, **row: object) -> ResultKind:
    """A trace-level test or study: rows in `<name>.jsonl`, filled by `anchors causality --tests <test>`."""
    test = test or name
    files = row.pop("files", {"rows": f"{name}.jsonl"})
    return ResultKind(name, files, f"anchors causality --tests {test}", test=test, **row)  # type: ignore[arg-type]


_BLACKBOX_LABELS = {
    "accuracy": "accuracy",
    "resampling_importance_accuracy": "resampling importance (accuracy)",
    "resampling_importance_kl": "resampling importance (KL)",
    "counterfactual_importance_accuracy": "counterfactual importance (accuracy)",
    "counterfactual_importance_kl": "counterfactual importance (KL)",
    "forced_importance_accuracy": "forced-answer importance (accuracy)",
    "forced_importance_kl": "forced-answer importance (KL)",
    "different_trajectories_fraction": "different-trajectories fraction",
    "overdeterminedness": "overdeterminedness",
}

# In report order: the kinds' panels follow the report's own (importance, graph, matrices, agreement) in this order.
_KINDS = (
    ResultKind("blackbox", {"rows": "scores.jsonl", "matrix": "sentence_matrix.npz", "alternatives": "alternatives.json"},
               "anchors score", labels=_BLACKBOX_LABELS,
               importances=("counterfactual_importance_kl", "resampling_importance_kl", "forced_importance_kl")),
    ResultKind("tags", {"rows": "tags.jsonl"}, "anchors label"),
    ResultKind("receivers", {"arrays": "receivers.npz"}, "anchors receivers", labels={"receiver_score": "receiver-head score"},
               importances=("receiver_score",)),
    ResultKind("suppression", {"arrays": "suppression.npz"}, "anchors suppress",
               labels={"suppression_effect": "suppression effect on later sentences",
                       "suppression_answer": "suppression effect on the answer (log-KL)"},
               importances=("suppression_effect",)),
    ResultKind("patching", {"arrays": "patching.npz"}, "anchors patch",
               labels={"patching_effect": "patching effect (forced-answer KL)"}, importances=("patching_effect",)),
    _test("early_answering", "early", positioned=True, panels=(Panel("early_answering", "Early answering"),)),
    _test("validity", files={"rows": "validity_sentences.jsonl", "claims": "validity_claims.jsonl"},
          columns={"label": "validity"}, tables={"validity_claims": "claims"}, average=False,
          panels=(Panel("validity", "Step validity", ("sentence_index", "label", "n_claims", "n_invalid", "text"),
                        "Step validity per sentence (claims checked exactly)"),)),
    _test("filler", panels=(Panel("filler", "Filler and swapped traces",
                                  ("condition", "n_answered", "accuracy", "match_rate", "thinking_tokens"),
                                  "Filler and swapped traces: is it the content that matters?"),)),
    _test("mistakes", positioned=True, columns={"match_drop": "mistake_match_drop"},
          labels={"mistake_match_drop": "inserted-mistake match drop"},
          panels=(Panel("mistakes", "Inserted mistakes",
                        ("sentence_index", "kind", "old", "new", "clean_match_rate", "corrupted_match_rate", "match_drop"),
                        "Inserted mistakes: does a corrupted step change the answer?"),)),
    _test("paraphrase", panels=(Panel("paraphrase", "Paraphrase",
                                      ("k", "x", "original_match_rate", "paraphrase_match_rate", "match_drop"),
                                      "Paraphrased prefixes"),)),
    _test("resilience", positioned=True, columns={"resilience": "resilience", "ci_pp_kl": "ci_pp_kl"},
          labels={"resilience": "resilience (rounds)", "ci_pp_kl": "CI++ (KL)"},
          panels=(Panel("resilience", "Resilience and CI++",
                        ("sentence_index", "rounds", "censored", "resilience", "ci_pp_match", "ci_pp_accuracy", "ci_pp_kl",
                         "text"), "Resilience and CI++: does the content come back, and what does its absence do?"),)),
    _test("hint", files={"rows": "hint.jsonl", "transplant": "hint_transplant.jsonl"}, study=True, positioned=True,
          columns={"importance": "hint_importance", "cue_cosine": "cue_cosine"}, tables={"hint_transplant": "transplant"},
          average=False, panels=(Panel("hint", "Hinted unfaithfulness: the cued trace", axis="sentence-points"),
                                 Panel("hint_transplant", "Hint transplant curve"))),
    _test("insertions", study=True, positioned=True,
          panels=(Panel("insertions", "Off- vs on-policy insertions",
                        ("sentence_index", "condition", "mean_logprob", "match_shift", "kl_shift", "n_answered", "similarity",
                         "text"), "Inserted sentences: does an off-policy edit move the answer more than the model's own words?"),)),
    ResultKind("head_ablation", {"rows": "head_ablation.jsonl"}, "anchors receivers --ablate K", study=True,
               panels=(Panel("head_ablation", "Receiver-head ablation",
                             ("condition", "draw", "heads", "answer_kl", "answer_prob_clean", "answer_prob_ablated",
                              "accuracy_change", "receivers_rank"), "Ablating the receiver heads vs random heads of the same layers"),)),
    ResultKind("table", {"metrics": "metrics.csv", "matrices": "matrices.npz", "early": "early_answering_table.csv"},
               "anchors.write_results"),
)
KINDS: Mapping[str, ResultKind] = MappingProxyType({kind.name: kind for kind in _KINDS})

# Derived views, for the code that needs one aspect of every kind.
TRACE_FILES: Mapping[str, Mapping[str, str]] = MappingProxyType({k.name: k.files for k in _KINDS})
# run-level kinds -> role -> file name, in the results root.
RUN_FILES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "receiver_heads": {"arrays": "receiver_heads.npz"},
    "causality": {"summary": "causality_summary.json", "curve": "early_answering_curve.npz"},
    "head_ablation": {"summary": "head_ablation_summary.json"},
})
COMMANDS = {k.name: k.command for k in _KINDS if k.name != "table"}
STUDIES = tuple(k.name for k in _KINDS if k.study)
IMPORTANCES = tuple(column for k in _KINDS for column in k.importances)
METRIC_LABELS = {column: label for k in _KINDS for column, label in k.labels.items()}
PANELS = tuple(panel for k in _KINDS for panel in k.panels)
STUDY_PANELS = tuple(panel.name for k in _KINDS if k.study for panel in k.panels)
TESTS = {k.test: k for k in _KINDS if k.test is not None}  # `--tests` name -> kind
