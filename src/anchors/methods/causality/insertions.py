"""Off-policy versus on-policy edits (Thought Branches): do hand-written insertions overstate a sentence's effect?

At a position i of a trace (before sentence i: the `sentences` given, else the positions the hand-written file
names, else `positions` evenly spaced over 1..n-1) one sentence is inserted into the thinking — prefix
S_1..S_{i-1}, the inserted sentence, then `samples` on-policy continuations and the forced answer — and compared
with the same continuations without it (the baseline, R_i):

* `handwritten`: the sentence a researcher wrote (per trace and position from a file, else `InsertionsConfig.text`);
* `on_policy`: resample-and-select: `candidates` sentences the model itself writes at i, and the one closest
  (cosine of all-MiniLM-L6-v2 embeddings) to the hand-written one: the same intervention, in the model's words;
* `other_model`: the sentence of another model's trace of the same problem closest to the hand-written one.

Per condition: the answer shift against the baseline (`match_shift` = baseline − inserted match rate with the
trace's own answer, `kl_shift` = KL(ans(inserted) ‖ ans(baseline)), α = 0.5) and the **on-policyness** of the
inserted sentence: its mean token log-probability under the model given the prompt and prefix (temperature 1). For
the on-policy sentence it comes from the logprobs the sampler recorded with the candidates (the rollout store's);
for the others it is computed by teacher forcing (`TraceSampler.token_logprobs`; NaN where the sampler cannot score
text). The summary table puts the conditions side by side: if the off-policy edits move the answer much more
than the on-policy one while being far less likely under the model, off-policy edits overstate effects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from anchors.methods.causality.sampling import (
    Continuation, EmbedFn, TraceSampler, answer_keys, answer_rates, continuations, cosines, embed_function,
)  # fmt: skip
from anchors.methods.causality.tables import Row, RowsResult
from anchors.metrics.curves import answer_kl, evenly_spaced, mean_and_se
from anchors.rollouts.base import Rollout
from anchors.rollouts.plan import chosen_sentences
from anchors.traces.records import Trace
from anchors.traces.segment import Sentence, split_sentences
from anchors.types import Progress

CONDITIONS = ("baseline", "handwritten", "on_policy", "other_model")
DEFAULT_TEXT = "Wait, I think I made a mistake somewhere, so the answer must be different."
CANDIDATE_TOKENS = 48  # enough for one sentence


@dataclass(frozen=True)
class InsertionsConfig:
    positions: int = 2  # insertion points per trace (when no sentences are given)
    samples: int = 3  # continuations after each condition's prefix
    candidates: int = 6  # on-policy sentences sampled at i to select from
    continue_tokens: int = 64
    answer_tokens: int = 16
    text: str = DEFAULT_TEXT  # the hand-written sentence where the file gives none
    seed: int = 0


class InsertionRow(Row):
    trace_id: str
    sentence_index: int  # inserted before this sentence
    n_sentences: int
    condition: str  # baseline / handwritten / on_policy / other_model
    text: str | None  # the inserted sentence (None for the baseline)
    similarity: float  # cosine with the hand-written sentence (NaN for the baseline)
    mean_logprob: float  # mean token log-probability under the model given prompt + prefix
    n_tokens: int | None
    logprob_source: str | None  # sampled (the store's logprobs) / scored (teacher forcing) / None
    n_samples: int
    n_answered: int
    match_rate: float
    accuracy: float
    match_shift: float  # baseline − this condition's match rate
    kl_shift: float  # KL(ans(this) ‖ ans(baseline))
    n_grading_failed: int
    answers: list[str | None]


class InsertionsResult(RowsResult[InsertionRow, InsertionsConfig]):
    """One row per (trace, position, condition)."""

    row_type = InsertionRow

    def table(self) -> pd.DataFrame:
        """Per condition: mean ± SE over insertions of the answer shift and of the on-policyness."""
        out = []
        for condition in CONDITIONS[1:]:
            rows = [r for r in self.rows if r.condition == condition]
            if rows:
                kl, shift, logprob = (mean_and_se([getattr(r, f) for r in rows]) for f in ("kl_shift", "match_shift", "mean_logprob"))
                out.append({"condition": condition, "n": len(rows), "kl_shift_mean": kl[0], "kl_shift_se": kl[1],
                            "match_shift_mean": shift[0], "match_shift_se": shift[1], "mean_logprob_mean": logprob[0],
                            "mean_logprob_se": logprob[1]})
        return pd.DataFrame(out, columns=["condition", "n", "kl_shift_mean", "kl_shift_se", "match_shift_mean",
                                          "match_shift_se", "mean_logprob_mean", "mean_logprob_se"])

    def summary(self) -> dict[str, Any]:
        table = self.table().set_index("condition") if self.rows else pd.DataFrame()
        out: dict[str, Any] = {"n_rows": len(self.rows), "conditions": table.reset_index().to_dict("records") if len(table) else []}
        for off in ("handwritten", "other_model"):
            if off in table.index and "on_policy" in table.index:
                out[f"{off}_minus_on_policy_kl_shift"] = float(table.loc[off, "kl_shift_mean"] - table.loc["on_policy", "kl_shift_mean"])
                out[f"{off}_minus_on_policy_logprob"] = float(table.loc[off, "mean_logprob_mean"] - table.loc["on_policy", "mean_logprob_mean"])
        return out


def insertion_study(sampler: TraceSampler, traces: Sequence[Trace], embed: EmbedFn | Any,
                    config: InsertionsConfig = InsertionsConfig(), *, sentences: Sequence[int] | None = None,
                    handwritten: Mapping[tuple[str, int], str] | None = None,
                    other_traces: Mapping[str, Trace] | None = None, progress: Progress | None = None) -> InsertionsResult:
    """Insert each condition's sentence at a few positions of every trace and measure the answer shift and the
    sentence's on-policyness (see the module docstring). `handwritten`: (trace id, position) -> text;
    `other_traces`: trace id -> another model's trace of the same problem."""
    embed_fn = embed_function(embed)
    rows: list[InsertionRow] = []
    for trace in progress(traces, "insertions") if progress else traces:
        split = split_sentences(trace.thinking)
        given = sorted(i for t, i in (handwritten or {}) if t == trace.id)
        for i in insertion_points(trace, split, config.positions, sentences if sentences is not None else given or None):
            hand = (handwritten or {}).get((trace.id, i), config.text).strip()
            other = (other_traces or {}).get(trace.id)
            rows.extend(_position_rows(sampler, trace, split, i, hand, other, embed_fn, config))
    return InsertionsResult(tuple(rows), config, sampler.identity)


def insertion_points(trace: Trace, split: Sequence[Sentence], count: int, sentences: Sequence[int] | None) -> list[int]:
    """Positions 1..n-1 (an insertion needs something before it): the chosen ones (`sentences`, else the positions
    the hand-written file names for the trace), else `count` evenly spaced."""
    if sentences is not None:
        return [i for i in chosen_sentences(trace.id, len(split), sentences) if i >= 1]
    return evenly_spaced(list(range(1, len(split))), count)


def _position_rows(ts: TraceSampler, trace: Trace, split: Sequence[Sentence], i: int, hand: str, other: Trace | None,
                   embed: EmbedFn, config: InsertionsConfig) -> list[InsertionRow]:
    prefix = trace.thinking[: split[i].start]
    separator = split[i - 1].separator or " "
    inserted: dict[str, tuple[str, float, float, int | None, str | None]] = {}  # condition -> text, sim, logprob, n, source
    inserted["handwritten"] = (hand, 1.0, *_scored(ts, trace, prefix, hand))
    on_policy = _on_policy(ts, trace, prefix, hand, embed, config)
    if on_policy is not None:
        inserted["on_policy"] = on_policy
    if other is not None:
        pick = _closest(embed, [s.text for s in split_sentences(other.thinking)], hand)
        if pick is not None:
            inserted["other_model"] = (pick[0], pick[1], *_scored(ts, trace, prefix, pick[0]))
    prefixes = {"baseline": prefix, **{c: prefix + text + separator for c, (text, *_rest) in inserted.items()}}
    runs = continuations(ts, trace, prefixes, n=config.samples, seed=config.seed, continue_tokens=config.continue_tokens,
                         answer_tokens=config.answer_tokens)
    base = runs["baseline"]
    rows = [_row(trace, i, len(split), "baseline", None, float("nan"), (float("nan"), None, None), base, base)]
    rows += [_row(trace, i, len(split), c, text, sim, (lp, n, src), runs[c], base) for c, (text, sim, lp, n, src) in inserted.items()]
    return rows


def _scored(ts: TraceSampler, trace: Trace, prefix: str, text: str) -> tuple[float, int | None, str | None]:
    """Mean log-probability of `text` after the prompt and `prefix` by teacher forcing (NaN without a scorer)."""
    if ts.token_logprobs is None:
        return float("nan"), None, None
    values = ts.token_logprobs(ts.plan(trace).header + prefix, text)
    return (float(np.mean(values)) if values else float("nan")), len(values), "scored"


def _on_policy(ts: TraceSampler, trace: Trace, prefix: str, hand: str, embed: EmbedFn,
               config: InsertionsConfig) -> tuple[str, float, float, int | None, str | None] | None:
    """Resample-and-select: the first sentences of `candidates` continuations at i, the one closest to `hand`, and
    its mean log-probability from the logprobs recorded when it was sampled."""
    plan = ts.plan(trace)
    requests = plan.requests("insert", plan.position(prefix), plan.header + prefix, 0, config.candidates, config.seed)
    drawn = ts.sample({"candidates": requests}, 0, config.candidates, ts.params(CANDIDATE_TOKENS, logprobs=True))["candidates"]
    firsts = [(first, rollout) for rollout in drawn if rollout.ok and (first := _first_sentence(rollout.text, ts)) is not None]
    pick = _closest(embed, [f.text for f, _ in firsts], hand)
    if pick is None:
        return None
    sentence, rollout = next((f, r) for f, r in firsts if f.text == pick[0])
    return (pick[0], pick[1], *sampled_logprob(ts, rollout, sentence))


def _first_sentence(text: str, ts: TraceSampler) -> Sentence | None:
    body = text.split(ts.template.think_close)[0]
    pieces = split_sentences(body) if body.strip() else []
    return pieces[0] if pieces else None


def sampled_logprob(ts: TraceSampler, rollout: Rollout, sentence: Sentence) -> tuple[float, int | None, str | None]:
    """Mean of the recorded logprobs of the tokens that wrote `sentence` (found by counting the tokens of the text
    up to its start and its end); NaN when the sampler recorded none or cannot count tokens."""
    if not rollout.logprobs or ts.count_tokens is None:
        return float("nan"), None, None
    first = ts.count_tokens(rollout.text[: sentence.start]) if sentence.start else 0
    last = min(ts.count_tokens(rollout.text[: sentence.end]), len(rollout.logprobs))
    values = rollout.logprobs[first:last]
    return (float(np.mean(values)) if values else float("nan")), len(values), "sampled"


def _closest(embed: EmbedFn, texts: Sequence[str], target: str) -> tuple[str, float] | None:
    texts = [t for t in dict.fromkeys(texts) if t.strip()]
    if not texts:
        return None
    similarity = cosines(embed, texts, target)
    best = int(np.argmax(similarity))
    return texts[best], float(similarity[best])


def _row(trace: Trace, i: int, n: int, condition: str, text: str | None, similarity: float,
         logprob: tuple[float, int | None, str | None], runs: Sequence[Continuation], base: Sequence[Continuation]) -> InsertionRow:
    answers, base_answers = [c.answer for c in runs], [c.answer for c in base]
    stats, base_stats = answer_rates(answers), answer_rates(base_answers)
    keys, base_keys = answer_keys(answers), answer_keys(base_answers)
    return InsertionRow(
        trace_id=trace.id, sentence_index=i, n_sentences=n, condition=condition, text=text, similarity=similarity,
        mean_logprob=logprob[0], n_tokens=logprob[1], logprob_source=logprob[2], n_samples=int(stats["n_samples"]),
        n_answered=int(stats["n_answered"]), match_rate=stats["match_rate"], accuracy=stats["accuracy"],
        match_shift=base_stats["match_rate"] - stats["match_rate"],
        kl_shift=answer_kl(keys, base_keys) if keys and base_keys else float("nan"),
        n_grading_failed=sum(a.status in ("timeout", "error") for a in answers), answers=[a.key for a in answers],
    )  # fmt: skip
