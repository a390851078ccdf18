"""Activation patching at sentence granularity (methods.md §6; no reference implementation exists).

Clean run: prompt + thinking + forced-answer suffix (`...the final answer is \\boxed{`) + the trace's own
answer + `}`, teacher-forced. Counterfactual run: the same with sentence S_i replaced by a resampled T_i.
For each site (the residual stream entering a block, an attention output, an MLP output) and layer, the
clean run is repeated with that layer's activation at S_i's positions overwritten by the counterfactual
run's activation at T_i's positions, and the forced answer is compared with the clean run's:

* `kl[site, layer, i]`: KL(clean || patched) of the first answer token's distribution (full vocabulary,
  temperature 1);
* `logprob_delta[site, layer, i]`: ln p_patched(answer) - ln p_clean(answer), the answer's tokens and the
  closing brace teacher-forced.

`total_kl[i]` / `total_logprob_delta[i]` are the same for the counterfactual run itself (the whole effect
of swapping the sentence), the natural scale for the per-layer values.

Position alignment: S_i has m tokens, T_i has m'. The last k = min(m, m') positions are paired
(`align="end"`, default: a sentence's last token is where the model has read all of it) or the first k
(`align="start"`). With m > m', S_i's other m - k positions keep their clean activations; with m < m', T_i's
extra positions are not used. Every position after S_i stays at its clean position, so RoPE positions never
shift. Positions before the first patched one are unchanged and reuse the clean run's KV cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from jaxtyping import Float, Int

from anchors.errors import InputError
from anchors.methods.whitebox.sequence import adds_bos
from anchors.metrics.token_kl import full_kl, sequence_logprob
from anchors.models.hooks import Hook, HookedModel, hooked
from anchors.models.templates import PAPER_FORCED_ANSWER_SUFFIX
from anchors.traces.answers import extract_answer
from anchors.traces.records import Trace
from anchors.traces.segment import Mode, Sentence, split_sentences
from anchors.traces.token_spans import check_token_spans, encode_with_spans
from anchors.types import Progress

if TYPE_CHECKING:
    import pandas as pd

    from anchors.models.handle import ModelHandle

T = TypeVar("T")
Site = Literal["resid", "attn", "mlp"]
SITES: tuple[Site, ...] = ("resid", "attn", "mlp")
_HOOK_POINT = {"resid": "resid_pre", "attn": "attn_out", "mlp": "mlp_out"}

__all__ = ["SITES", "PatchingConfig", "PatchingResult", "activation_patching"]


@dataclass(frozen=True)
class PatchingConfig:
    """Where to patch and how to line positions up."""

    sites: tuple[Site, ...] = ("resid",)  # "resid" (block input), "attn" (attention output), "mlp" (MLP output)
    layers: tuple[int, ...] | None = None  # None: every layer
    sentences: tuple[int, ...] | None = None  # None: every sentence that has a replacement
    align: Literal["end", "start"] = "end"  # which min(m, m') positions of S_i and T_i are paired
    answer: str | None = None  # the answer to force; None: extracted from the trace's answer text
    mode: Mode = "default"  # segmentation, answer extraction and forced-answer suffix ("paper": the authors')
    batch_size: int = 8  # layers patched in one batched forward pass
    query_chunk: int | None = None  # queries per forward chunk; None: automatic


@dataclass(frozen=True)
class PatchingResult:
    """One trace's patching matrices. NaN: not computed (layer not selected, or no replacement)."""

    trace_id: str
    model: str
    config: PatchingConfig
    sentences: tuple[str, ...]
    replacements: tuple[str | None, ...]  # T_i used for each sentence, None if none
    answer: str  # the forced answer
    sites: tuple[Site, ...]
    kl: Float[np.ndarray, "site layer sent"]
    logprob_delta: Float[np.ndarray, "site layer sent"]
    total_kl: Float[np.ndarray, " sent"]
    total_logprob_delta: Float[np.ndarray, " sent"]
    patched_tokens: Int[np.ndarray, " sent"]  # k = min(m, m') positions patched (0: not computed)

    def to_pandas(self) -> pd.DataFrame:
        """One row per computed (site, layer, sentence)."""
        import pandas as pd

        sites, layers, sents = np.indices(self.kl.shape).reshape(3, -1)
        frame = pd.DataFrame({"trace_id": self.trace_id, "site": [self.sites[s] for s in sites], "layer": layers,
                              "sentence": sents, "kl": self.kl.reshape(-1),
                              "logprob_delta": self.logprob_delta.reshape(-1)})
        return frame[frame["kl"].notna()].reset_index(drop=True)


@dataclass(frozen=True)
class ForcedSequence:
    """A forced-answer token sequence: ids [1, tok], the token span of the sentences asked for, and the
    logit positions that predict the answer tokens."""

    ids: Any
    spans: dict[int, tuple[int, int]]
    scored: slice
    targets: Any


def activation_patching(
    model: ModelHandle | HookedModel,
    trace: Trace,
    replacements: Mapping[int, str],
    config: PatchingConfig = PatchingConfig(),
    *,
    progress: Progress[int] | None = None,
) -> PatchingResult:
    """Patch each replaced sentence's activations layer by layer and measure the forced answer's change."""
    runner = hooked(model)
    sentences = split_sentences(trace.thinking, mode=config.mode)
    todo = _sentences_to_patch(trace, sentences, replacements, config)
    answer = config.answer or trace_answer(trace, config.mode)
    targets = runner.handle.encode(answer + "}")
    clean = forced_sequence(runner, trace, trace.thinking, {k: sentences[k] for k in todo}, targets, config.mode)
    chunk = config.query_chunk or runner.auto_chunk(clean.ids.shape[1])
    clean_run = runner.run(clean.ids, keep_hidden=True, query_chunk=chunk)
    state = _State(runner, config, clean, clean_run, chunk, len(sentences))
    for k in progress(todo, f"patching sentences of {trace.id}") if progress else todo:
        state.patch_sentence(trace, sentences, k, replacements[k].strip())
    return PatchingResult(
        trace_id=trace.id, model=runner.handle.name, config=config, sentences=tuple(s.text for s in sentences),
        replacements=tuple(replacements.get(k) if k in todo else None for k in range(len(sentences))),
        answer=answer, sites=config.sites, kl=state.kl, logprob_delta=state.delta, total_kl=state.total_kl,
        total_logprob_delta=state.total_delta, patched_tokens=state.patched,
    )


class _State:
    """The clean run and the result arrays, filled one sentence at a time."""

    def __init__(self, runner: HookedModel, config: PatchingConfig, clean: ForcedSequence, clean_run: Any,
                 chunk: int, n: int) -> None:
        self.runner, self.config, self.clean, self.clean_run, self.chunk = runner, config, clean, clean_run, chunk
        self.clean_logits = runner.logits(clean_run.hidden[0, clean.scored])
        self.clean_logprob = sequence_logprob(self.clean_logits, clean.targets)
        shape = (len(config.sites), runner.n_layers, n)
        self.kl, self.delta = np.full(shape, np.nan), np.full(shape, np.nan)
        self.total_kl, self.total_delta = np.full(n, np.nan), np.full(n, np.nan)
        self.patched = np.zeros(n, dtype=np.int64)
        self.layers = list(config.layers if config.layers is not None else range(runner.n_layers))

    def patch_sentence(self, trace: Trace, sentences: list[Sentence], k: int, text: str) -> None:
        s = sentences[k]
        thinking = trace.thinking[: s.start] + text + trace.thinking[s.end :]
        swapped = Sentence(k, text, s.start, s.start + len(text), s.separator)
        counterfactual = forced_sequence(self.runner, trace, thinking, {k: swapped}, self.clean.targets.tolist(),
                                 self.config.mode)
        clean_pos, cf_pos = _aligned(self.clean.spans[k], counterfactual.spans[k], self.config.align)
        captured, cf_logits = self._counterfactual(counterfactual, cf_pos)
        self.total_kl[k], self.total_delta[k] = self._compare(cf_logits[None])
        self.patched[k] = len(clean_pos)
        for i, site in enumerate(self.config.sites):
            for group in _batches(self.layers, self.config.batch_size):
                logits = self._patched(site, group, clean_pos, captured)
                for b, layer in enumerate(group):
                    self.kl[i, layer, k], self.delta[i, layer, k] = self._compare(logits[b : b + 1])

    def _counterfactual(self, cf: ForcedSequence, positions: list[int]) -> tuple[dict[tuple[str, int], Any], Any]:
        """Run the counterfactual from where it departs from the clean sequence, capturing every site."""
        start = min(_common_prefix(self.clean.ids, cf.ids), positions[0])
        captured: dict[tuple[str, int], Any] = {}

        def capture(site: str) -> Callable[[int, int, Any], None]:
            def keep(layer: int, offset: int, act: Any) -> None:
                rows = [p - offset for p in positions if offset <= p < offset + act.shape[1]]
                if rows:
                    piece = act[0, rows].clone()
                    old = captured.get((site, layer))
                    captured[(site, layer)] = piece if old is None else _cat(old, piece)
            return keep

        hooks = [Hook(_HOOK_POINT[site], self.layers, capture(site)) for site in self.config.sites]  # type: ignore[arg-type]
        cache = self.runner.new_cache(self.clean_run.cache, start)
        run = self.runner.run(cf.ids[:, start:], hooks=hooks, cache=cache, query_chunk=self.chunk, keep_hidden=True)
        scored = slice(cf.scored.start - start, cf.scored.stop - start)
        return captured, self.runner.logits(run.hidden[0, scored])

    def _patched(self, site: Site, layers: Sequence[int], positions: list[int], captured: dict) -> Any:
        """Logits at the scored positions of the clean run, one batch row per patched layer."""
        start = positions[0]
        hooks = [Hook(_HOOK_POINT[site], [layer], _overwrite(b, start, positions, captured[(site, layer)]))  # type: ignore[arg-type]
                 for b, layer in enumerate(layers)]
        ids = self.clean.ids[:, start:].expand(len(layers), -1)
        cache = self.runner.new_cache(self.clean_run.cache, start, batch=len(layers))
        run = self.runner.run(ids, hooks=hooks, cache=cache, query_chunk=self.chunk, keep_hidden=True)
        scored = slice(self.clean.scored.start - start, self.clean.scored.stop - start)
        return self.runner.logits(run.hidden[:, scored])

    def _compare(self, logits: Any) -> tuple[float, float]:
        """(KL of the first answer token, change of the answer's log-probability) against the clean run."""
        kl = float(full_kl(self.clean_logits[:1], logits[0, :1])[0])
        return kl, sequence_logprob(logits[0], self.clean.targets) - self.clean_logprob


def _overwrite(row: int, start: int, positions: list[int], values: Any) -> Callable[[int, int, Any], Any]:
    def patch(_layer: int, offset: int, act: Any) -> Any:
        pairs = [(p - offset, k) for k, p in enumerate(positions) if offset <= p < offset + act.shape[1]]
        if pairs:
            act[row, [p for p, _ in pairs]] = values[[k for _, k in pairs]].to(act.dtype)
        return act

    return patch


def _aligned(clean: tuple[int, int], cf: tuple[int, int], align: str) -> tuple[list[int], list[int]]:
    k = min(clean[1] - clean[0], cf[1] - cf[0])
    if align == "start":
        return list(range(clean[0], clean[0] + k)), list(range(cf[0], cf[0] + k))
    return list(range(clean[1] - k, clean[1])), list(range(cf[1] - k, cf[1]))


def forced_sequence(
    runner: HookedModel, trace: Trace, thinking: str,
    wanted: Mapping[int, Sentence], targets: Sequence[int], mode: Mode,
) -> ForcedSequence:
    """Tokens of prompt + `thinking` + forced-answer suffix + answer targets, and the spans of `wanted`."""
    import torch

    handle = runner.handle
    prompt = trace.prompt if trace.prompt is not None else handle.template.render(trace.problem)
    suffix = PAPER_FORCED_ANSWER_SUFFIX if mode == "paper" else handle.template.forced_answer_suffix
    text = prompt + thinking + suffix
    order = sorted(wanted)
    char_spans = [(len(prompt) + wanted[k].start, len(prompt) + wanted[k].end) for k in order]
    encoded = encode_with_spans(handle.tokenizer, text, char_spans, add_special_tokens=adds_bos(handle.tokenizer, prompt))
    try:
        check_token_spans(handle.tokenizer, text, char_spans, encoded)
    except InputError as error:
        raise InputError(f"trace {trace.id!r}: {_renumber(str(error), order)}") from None
    ids = list(encoded.input_ids) + list(targets)
    _check_context(runner, trace, len(ids))
    n = len(encoded.input_ids)
    return ForcedSequence(ids=torch.tensor([ids], device=runner.device), spans=dict(zip(order, encoded.spans)),
                   scored=slice(n - 1, len(ids) - 1), targets=torch.tensor(ids[n:], device=runner.device))


def _renumber(message: str, order: list[int]) -> str:
    """check_token_spans numbers the sentences it was given; name them by their index in the trace."""
    for position, k in enumerate(order):
        if message.startswith(f"sentence {position} "):
            return f"sentence {k} " + message[len(f"sentence {position} ") :]
        if message.startswith(f"sentence {position}:"):
            return f"sentence {k}:" + message[len(f"sentence {position}:") :]
    return message


def _check_context(runner: HookedModel, trace: Trace, length: int) -> None:
    limit = runner.handle.context_length
    if limit and length > limit:
        raise InputError(
            f"trace {trace.id!r}: the forced-answer sequence is {length} tokens, longer than the model's context "
            f"of {limit} tokens; use a model with a longer context or shorten the trace"
        )


def _sentences_to_patch(trace: Trace, sentences: list[Sentence], replacements: Mapping[int, str],
                        config: PatchingConfig) -> list[int]:
    bad = [k for k in (*replacements, *(config.sentences or ())) if not 0 <= k < len(sentences)]
    if bad:
        raise InputError(f"trace {trace.id!r}: sentence {bad[0]} does not exist (the trace has {len(sentences)})")
    wanted = config.sentences if config.sentences is not None else range(len(sentences))
    todo = [k for k in wanted if k in replacements and replacements[k].strip()]
    if not todo:
        raise InputError(f"trace {trace.id!r}: no replacement text for any of the sentences asked for")
    return todo


def trace_answer(trace: Trace, mode: Mode) -> str:
    answer = extract_answer(trace.answer_text, "paper" if mode == "paper" else "auto")
    if not answer:
        raise InputError(f"trace {trace.id!r}: no final answer found in its answer text to force; pass answer=...")
    return answer


def _common_prefix(a: Any, b: Any) -> int:
    n = min(a.shape[1], b.shape[1])
    differ = (a[0, :n] != b[0, :n]).nonzero()
    return int(differ[0, 0]) if len(differ) else n


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for lo in range(0, len(items), max(1, size)):
        yield list(items[lo : lo + size])


def _cat(old: Any, new: Any) -> Any:
    import torch

    return torch.cat([old, new])
