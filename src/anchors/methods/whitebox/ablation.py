"""Receiver-head ablation (`anchors receivers --ablate K`): do the receiver heads matter for the answer, more than
other heads of the same layers?

For each trace, the forced-answer sequence (prompt + thinking + forced-answer suffix + answer, teacher-forced, as
activation patching uses) is run clean and with the attention output of a set of heads ablated at every position:
their per-head output before the output projection (`attn.o.hook_in`) set to zero (`method="zero"`) or to its mean
over the positions of this trace's clean run (`"mean"`). The sets are the top-K receiver heads, and `draws` sets of
K random heads drawn from the same layers (one head per receiver head, in its layer, never a receiver head), so
the comparison holds the layers fixed. Per set:

* `answer_kl`: KL(clean ‖ ablated) of the first answer token's distribution (full vocabulary, temperature 1);
* `answer_prob_clean` / `answer_prob_ablated`: the probability of the answer (its tokens and the closing brace,
  teacher-forced), the model's chance of writing it at temperature 1; `accuracy_change` = ablated − clean, with
  the gold answer when the trace has one (else the trace's own answer: `answer_is_gold` says which).

`receivers_rank`: the share of random draws whose KL is below the receivers' (1.0: ablating the receivers moves the
answer more than any random set of the same layers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from anchors.errors import InputError
from anchors.methods.whitebox.patching import forced_sequence, trace_answer
from anchors.metrics.token_kl import full_kl, sequence_logprob
from anchors.models.hooks import HOOK_NAMES, Hook, HookedModel, UnsupportedModelError, hooked
from anchors.traces.records import Trace
from anchors.traces.segment import Mode
from anchors.types import Progress

if TYPE_CHECKING:
    from anchors.models.handle import ModelHandle

Head = tuple[int, int]


@dataclass(frozen=True)
class AblationConfig:
    k: int = 20  # receiver heads ablated (the top K by mean kurtosis)
    method: Literal["zero", "mean"] = "zero"
    draws: int = 5  # random head sets of the same layers
    seed: int = 0
    mode: Mode = "default"  # segmentation and forced-answer suffix, as the receivers were found

    def __post_init__(self) -> None:
        if self.k < 1 or self.draws < 1:
            raise InputError("head ablation needs k ≥ 1 and at least one random draw")
        if self.method not in ("zero", "mean"):
            raise InputError(f"head ablation method must be 'zero' or 'mean', not {self.method!r}")


class AblationRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    trace_id: str
    condition: str  # receivers / random
    draw: int | None  # which random draw (None for the receivers)
    heads: list[list[int]]  # (layer, head) pairs ablated
    answer: str
    answer_is_gold: bool
    answer_kl: float
    answer_prob_clean: float
    answer_prob_ablated: float
    accuracy_change: float  # answer_prob_ablated − answer_prob_clean
    receivers_rank: float | None  # receivers row: share of random draws with a lower KL


@dataclass(frozen=True)
class HeadAblationResult:
    model: str
    config: AblationConfig
    heads: tuple[Head, ...]  # the receiver heads ablated
    rows: tuple[AblationRow, ...]

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([r.model_dump() for r in self.rows])

    def summary(self) -> dict[str, Any]:
        """Mean over traces of the receivers' and the random sets' effects."""
        frame = self.to_pandas()
        if frame.empty:
            return {"n_traces": 0}
        receivers, random = frame[frame.condition == "receivers"], frame[frame.condition == "random"]
        return {"n_traces": int(receivers.trace_id.nunique()), "k": len(self.heads), "method": self.config.method,
                "receivers_kl_mean": float(receivers.answer_kl.mean()), "random_kl_mean": float(random.answer_kl.mean()),
                "receivers_accuracy_change_mean": float(receivers.accuracy_change.mean()),
                "random_accuracy_change_mean": float(random.accuracy_change.mean()),
                "receivers_rank_mean": float(receivers.receivers_rank.mean())}


def head_ablation(model: ModelHandle | HookedModel, traces: Sequence[Trace], heads: Sequence[Head],
                  config: AblationConfig = AblationConfig(), *, progress: Progress[Trace] | None = None,
                  on_error: Callable[[Trace, Exception], None] | None = None) -> HeadAblationResult:
    """Ablate the receiver `heads` and random heads of the same layers on every trace (see the module docstring)."""
    runner = hooked(model)
    if HOOK_NAMES["head_out"].format(layer=0) not in runner.bridge.hook_dict:
        raise UnsupportedModelError(f"{runner.architecture}: the TransformerLens bridge has no per-head attention "
                                    "output hook (attn.o.hook_in); head ablation cannot run on it")
    heads = tuple((int(a), int(b)) for a, b in heads)
    if not heads:
        raise InputError("no receiver heads to ablate")
    sets = [heads, *(random_heads(heads, runner.n_heads, np.random.default_rng([config.seed, d]))
                     for d in range(config.draws))]
    rows: list[AblationRow] = []
    for trace in progress(traces, "head ablation") if progress else traces:
        try:
            rows.extend(_trace_rows(runner, trace, sets, config))
        except InputError as error:
            if on_error is None:
                raise
            on_error(trace, error)
    return HeadAblationResult(runner.handle.name, config, heads, tuple(rows))


def random_heads(receivers: Sequence[Head], n_heads: int, rng: np.random.Generator) -> tuple[Head, ...]:
    """One random head per receiver head, in the same layer, never a receiver head nor drawn twice."""
    taken = set(receivers)
    out = []
    for layer, _ in receivers:
        free = [h for h in range(n_heads) if (layer, h) not in taken]
        if not free:
            raise InputError(f"layer {layer} has no head left that is not a receiver head: lower --ablate")
        head = (layer, int(rng.choice(free)))
        taken.add(head)
        out.append(head)
    return tuple(out)


def _trace_rows(runner: HookedModel, trace: Trace, sets: list[tuple[Head, ...]], config: AblationConfig) -> list[AblationRow]:
    answer = (trace.gold_answer or "").strip() or trace_answer(trace, config.mode)
    targets = runner.handle.encode(answer + "}")
    sequence = forced_sequence(runner, trace, trace.thinking, {}, targets, config.mode)
    length = sequence.ids.shape[1]
    chunk = runner.auto_chunk(length)
    layers = sorted({layer for heads in sets for layer, _ in heads})
    sums: dict[int, Any] = {}
    counts: dict[int, int] = {}
    reading = [Hook("head_out", layers, _sum_into(sums, counts, sequence.scored.start, runner.n_heads))]
    clean = runner.run(sequence.ids, hooks=reading if config.method == "mean" else [], query_chunk=chunk, keep_hidden=True)
    means = {layer: sums[layer] / counts[layer] for layer in sums}
    clean_logits = runner.logits(clean.hidden[0, sequence.scored])
    ids = sequence.ids.expand(len(sets), -1)
    run = runner.run(ids, hooks=[Hook("head_out", layers, _ablate(sets, config.method, means, runner.n_heads))],
                     query_chunk=chunk, keep_hidden=True)
    logits = runner.logits(run.hidden[:, sequence.scored])
    p_clean = float(np.exp(sequence_logprob(clean_logits, sequence.targets)))
    kls = [float(full_kl(clean_logits[:1], logits[b, :1])[0]) for b in range(len(sets))]
    rows = []
    for b, heads in enumerate(sets):
        p = float(np.exp(sequence_logprob(logits[b], sequence.targets)))
        rank = float(np.mean([kls[0] > k for k in kls[1:]])) if b == 0 else None
        rows.append(AblationRow(trace_id=trace.id, condition="receivers" if b == 0 else "random", draw=None if b == 0 else b - 1,
                                heads=[list(h) for h in heads], answer=answer, answer_is_gold=bool((trace.gold_answer or "").strip()),
                                answer_kl=kls[b], answer_prob_clean=p_clean, answer_prob_ablated=p,
                                accuracy_change=p - p_clean, receivers_rank=rank))
    return rows


def _per_head(act: Any, n_heads: int) -> Any:
    """[batch, pos, head, d_head] view of the per-head output (the bridge gives it so, or flattened)."""
    return act if act.dim() == 4 else act.view(*act.shape[:-1], n_heads, -1)


def _sum_into(sums: dict[int, Any], counts: dict[int, int], end: int, n_heads: int) -> Callable[[int, int, Any], None]:
    """Sum each layer's per-head output [head, d_head] over the positions before `end` (the answer's own
    positions are not averaged in), for mean ablation."""
    def keep(layer: int, offset: int, act: Any) -> None:
        rows = max(0, min(act.shape[1], end - offset))
        if rows:
            part = _per_head(act, n_heads)[0, :rows].double().sum(dim=0)
            sums[layer] = part if layer not in sums else sums[layer] + part
            counts[layer] = counts.get(layer, 0) + rows
    return keep


def _ablate(sets: list[tuple[Head, ...]], method: str, means: dict[int, Any], n_heads: int) -> Callable[[int, int, Any], Any]:
    """Batch row r ablates the heads of `sets[r]`: zero, or the clean run's mean output of that head."""
    def ablate(layer: int, offset: int, act: Any) -> Any:
        view = _per_head(act, n_heads)  # a view: writing into it writes the activation
        for row, heads in enumerate(sets):
            for _, head in (h for h in heads if h[0] == layer):
                view[row, :, head] = means[layer][head].to(act.dtype) if method == "mean" else 0
        return act
    return ablate
