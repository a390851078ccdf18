"""White-box commands: receivers, suppress, patch. Results go to `OUT/<trace id>/`, the results folder every
command writes (see anchors.results.contract for the files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from anchors import console
from anchors.cli import Inputs, app, checks_outputs, check_mode, finish, handles_errors, reporter, results_dir
from anchors.cli import options as opt
from anchors.errors import InputError

ModelOption = Annotated[str, typer.Option("--model", help="Model alias, local folder, .gguf file or hub name.")]
LayersOption = Annotated[str | None, typer.Option("--layers", help="Layers, e.g. '0,2,5-9' (default: all).")]
SentencesOption = Annotated[str | None, typer.Option("--sentences", help="Sentence indices, e.g. '0-4,7' (default: all).")]
ChunkOption = Annotated[int | None, typer.Option("--query-chunk", min=1, help="Queries per forward chunk (default: automatic, ~64 MiB of attention scores).")]


@app.command()
@handles_errors
@checks_outputs(out="dir")
def receivers(
    traces: opt.Traces = None,
    model: ModelOption = "smollm2-135m",
    out: opt.Out = Path("results"),
    overwrite: opt.Overwrite = False,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Receiver heads to keep.")] = 20,
    proximity_ignore: Annotated[int, typer.Option("--proximity-ignore", min=0, help="Vertical scores skip the next N sentences.")] = 4,
    control_depth: Annotated[bool, typer.Option("--control-depth", help="Rank-normalise each row before vertical scores.")] = False,
    include_layer_zero: Annotated[bool, typer.Option("--include-layer-zero", help="Rank layer-0 heads too (left out by default, as published).")] = False,
    query_chunk: ChunkOption = None,
    ablate: Annotated[int, typer.Option("--ablate", min=0, help="Then ablate the top K receiver heads' attention output and compare the forced answer (KL, probability of the gold answer) with K random heads of the same layers (0: off).")] = 0,
    ablation: Annotated[str, typer.Option("--ablation", help="zero or mean (each head's mean output over the trace).")] = "zero",
    ablate_draws: Annotated[int, typer.Option("--ablate-draws", min=1, help="Random head sets to compare with.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random head sets.")] = 0,
    mode: opt.Mode = "default",
    from_ta: opt.FromTA = None,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Sentence-level attention and receiver heads: vertical scores, kurtosis, top-k heads, per-sentence scores;
    with --ablate K, what ablating the top K receiver heads does to the forced answer, against random heads."""
    from anchors.analysis import run_receivers, write_reports

    config = receiver_config(mode, top_k, proximity_ignore=proximity_ignore, control_depth=control_depth,
                             include_layer_zero=include_layer_zero, query_chunk=query_chunk)
    inputs, results, failed = Inputs(traces, from_ta, shard), results_dir(out, overwrite=overwrite), []
    items = list(inputs)
    if not items:  # before loading the model: the heads are ranked over the traces, so there must be some
        inputs.exit_if_invalid(skip_invalid)
        raise InputError("no valid traces to rank receiver heads on")
    plan = ablation_config(ablate, ablation, ablate_draws, seed, mode) if ablate else None
    result = run_receivers(_load(model, device, dtype), items, config, results, progress=console.track,
                           on_error=reporter(failed), ablation=plan)
    rows = [(rank, layer, head, f"{result.mean_kurtosis[layer, head]:.2f}") for rank, (layer, head) in enumerate(result.heads)]
    console.table(f"Receiver heads of {len(result.traces)} trace(s)", ["rank", "layer", "head", "mean kurtosis"], rows[:10])
    reliability = "not computed (needs 2+ traces)" if result.reliability is None else f"{result.reliability:.3f}"
    console.stdout.print(f"split-half reliability: {reliability}; wrote {out}/<trace id>/ for {len(result.traces)} trace(s)")
    if plan is not None:
        _print_ablation(results)
    write_reports(results, [t.trace_id for t in result.traces])
    finish(inputs, skip_invalid, failed)


def ablation_config(k: int, method: str, draws: int, seed: int, mode: str) -> Any:
    from anchors.methods.whitebox.ablation import AblationConfig

    return AblationConfig(k=k, method=method, draws=draws, seed=seed, mode=check_mode(mode))  # type: ignore[arg-type]


def _print_ablation(results: Any) -> None:
    manifest = results.run_manifest()
    entry = manifest.methods.get("head_ablation") if manifest is not None else None
    if entry is None:
        return
    summary = entry.summary
    rows = [(name, _number(summary.get(f"{key}_kl_mean")), _number(summary.get(f"{key}_accuracy_change_mean")))
            for name, key in (("receiver heads", "receivers"), ("random heads, same layers", "random"))]
    console.table(f"Ablating {summary.get('k')} heads ({summary.get('method')}), mean over {summary.get('n_traces')} trace(s)",
                  ["heads", "answer KL", "change in p(answer)"], rows)
    console.stdout.print(f"receivers' KL above the random draws' in {_number(summary.get('receivers_rank_mean'))} of them (mean share)")


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "NaN"


@app.command()
@handles_errors
@checks_outputs(out="dir")
def suppress(
    traces: opt.Traces = None,
    model: ModelOption = "smollm2-135m",
    out: opt.Out = Path("results"),
    overwrite: opt.Overwrite = False,
    layers: LayersOption = None,
    heads: Annotated[str | None, typer.Option("--heads", help="Heads masked in those layers, e.g. '0-3' (default: all).")] = None,
    sentences: SentencesOption = None,
    temperature: Annotated[float, typer.Option("--temperature", min=0.01)] = 0.6,
    top_p: opt.TopP = 0.9999,
    naive: Annotated[bool, typer.Option("--naive", help="Recompute every position instead of reusing the clean KV (slow reference).")] = False,
    query_chunk: ChunkOption = None,
    mode: opt.Mode = "default",
    from_ta: opt.FromTA = None,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Attention suppression matrix: mask each sentence's keys, measure every later token's KL."""
    from anchors.analysis import run_suppression, write_reports

    config = suppression_config(mode, layers=layers, heads=heads, sentences=sentences, temperature=temperature,
                                top_p=top_p, naive=naive, query_chunk=query_chunk)
    inputs, results, failed = Inputs(traces, from_ta, shard), results_dir(out, overwrite=overwrite), []
    items = list(inputs)
    done = run_suppression(_load(model, device, dtype), items, config, results, progress=console.track, on_error=reporter(failed))
    for result in done:
        console.stdout.print(f"{result.trace_id}: {len(result.sentences)} sentences → {results.trace_dir(result.trace_id)}/")
    write_reports(results, [r.trace_id for r in done])
    finish(inputs, skip_invalid, failed)


@app.command()
@handles_errors
@checks_outputs(out="dir")
def patch(
    traces: opt.Traces = None,
    model: ModelOption = "smollm2-135m",
    out: opt.Out = Path("results"),
    overwrite: opt.Overwrite = False,
    replacements: Annotated[Path | None, typer.Option("--replacements", help="JSONL of {\"trace_id\", \"sentence\", \"text\"}: the counterfactual sentence for each S_i (default: with --from-ta the authors' resampled sentences, else the first different resampled sentence of `anchors score` in OUT).")] = None,
    sites: Annotated[str, typer.Option("--sites", help="Comma-separated: resid (block input), attn (attention output), mlp (MLP output).")] = "resid",
    layers: LayersOption = None,
    sentences: SentencesOption = None,
    align: Annotated[Literal["end", "start"], typer.Option("--align", help="Pair the last ('end') or first ('start') min(m, m') tokens of S_i and T_i.")] = "end",
    answer: Annotated[str | None, typer.Option("--answer", help="Answer to force (default: extracted from each trace's answer text).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Layers patched per batched forward pass.")] = 8,
    query_chunk: ChunkOption = None,
    mode: opt.Mode = "default",
    from_ta: opt.FromTA = None,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Activation patching per sentence and layer: swap in a counterfactual sentence's activations, measure the forced answer."""
    from anchors.analysis import run_patching, write_reports

    config = patching_config(mode, sites=sites, layers=layers, sentences=sentences, align=align, answer=answer,
                             batch_size=batch_size, query_chunk=query_chunk)
    inputs, results, failed = Inputs(traces, from_ta, shard), results_dir(out, overwrite=overwrite), []
    source, origin = _replacement_source(replacements, from_ta, check_mode(mode), results)
    items = list(inputs)
    if origin == "rollouts" and not any("blackbox" in getattr(results.trace_manifest(t.id), "methods", {}) for t in items):
        raise InputError(f"patch needs counterfactual sentences: --replacements FILE.jsonl, --from-ta DIR (the authors' "
                         f"resampled sentences), or the black-box results of these traces in {out} (anchors score --out {out})")
    done = run_patching(_load(model, device, dtype), items, source, config, results, source=origin,
                        progress=console.track, on_error=reporter(failed))
    for result in done:
        patched = int((result.patched_tokens > 0).sum())
        console.stdout.print(f"{result.trace_id}: {patched} sentence(s) patched → {results.trace_dir(result.trace_id)}/")
    write_reports(results, [r.trace_id for r in done])
    finish(inputs, skip_invalid, failed)


# --- settings from options (the commands' defaults: analyze builds them the same way) -------------


def receiver_config(mode: str, top_k: int = 20, *, proximity_ignore: int = 4, control_depth: bool = False,
                    include_layer_zero: bool = False, query_chunk: int | None = None) -> Any:
    from anchors.methods.whitebox.receivers import ReceiverConfig

    return ReceiverConfig(proximity_ignore=proximity_ignore, control_depth=control_depth, top_k=top_k,
                          exclude_layers=() if include_layer_zero else (0,), mode=check_mode(mode),  # type: ignore[arg-type]
                          query_chunk=query_chunk)


def suppression_config(mode: str, *, layers: str | None = None, heads: str | None = None, sentences: str | None = None,
                       temperature: float = 0.6, top_p: float = 0.9999, naive: bool = False,
                       query_chunk: int | None = None) -> Any:
    from anchors.methods.whitebox.suppression import SuppressionConfig

    return SuppressionConfig(layers=opt.parse_indices(layers, "--layers"), heads=opt.parse_indices(heads, "--heads"),
                             sources=opt.parse_indices(sentences, "--sentences"), temperature=temperature, top_p=top_p,
                             mode=check_mode(mode), reuse_kv=not naive, query_chunk=query_chunk)  # type: ignore[arg-type]


def patching_config(mode: str, *, sites: str = "resid", layers: str | None = None, sentences: str | None = None,
                    align: str = "end", answer: str | None = None, batch_size: int = 8,
                    query_chunk: int | None = None) -> Any:
    from anchors.methods.whitebox.patching import SITES, PatchingConfig

    chosen = tuple(s.strip() for s in sites.split(",") if s.strip())
    if not chosen or any(s not in SITES for s in chosen):
        raise InputError(f"--sites must be a comma-separated subset of {', '.join(SITES)}, not {sites!r}")
    if align not in ("end", "start"):
        raise InputError(f"--align must be 'end' or 'start', not {align!r}")
    return PatchingConfig(sites=chosen, layers=opt.parse_indices(layers, "--layers"), sentences=opt.parse_indices(sentences, "--sentences"),  # type: ignore[arg-type]
                          align=align, answer=answer, mode=check_mode(mode), batch_size=batch_size, query_chunk=query_chunk)  # type: ignore[arg-type]


# --- helpers -------------------------------------------------------------------------------------


def _load(model: str, device: str | None, dtype: str | None) -> Any:
    from anchors.models import load_model

    return load_model(model, device=device, dtype=dtype)


def _replacement_source(path: Path | None, from_ta: Path | None, mode: str,
                        results: Any) -> tuple[Callable[[Any], dict[int, str]], str]:
    """Where each trace's counterfactual sentences T_i come from, and its name in the settings."""
    from anchors.analysis import rollout_replacements
    from anchors.methods.whitebox.replacements import read_replacements, thought_anchors_replacements
    from anchors.traces.segment import split_sentences

    if path is not None:
        table = read_replacements(path)
        return (lambda trace: table.get(trace.id, {})), f"file:{path.name}"
    if from_ta is not None:
        return (lambda trace: thought_anchors_replacements(trace, [s.text for s in split_sentences(trace.thinking, mode="paper")])), "thought-anchors"
    return rollout_replacements(results), "rollouts"
