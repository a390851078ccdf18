"""White-box commands: receivers, suppress, patch (methods.md §6). Results go to `OUT/<trace id>/…`
(see anchors.methods.whitebox_files for the files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import (
    FromTA,
    Inputs,
    ModeOption,
    SkipInvalid,
    app,
    check_mode,
    checks_outputs,
    handles_errors,
)
from anchors.errors import AnchorsError, InputError

ModelOption = Annotated[str, typer.Option("--model", help="Model alias, local folder, .gguf file or hub name.")]
OutOption = Annotated[Path, typer.Option("--out", help="Output folder; each trace's files go to OUT/<trace id>/.")]
DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")]
DtypeOption = Annotated[str | None, typer.Option("--dtype", help="float32 or bfloat16 (default: float32 on CPU).")]
LayersOption = Annotated[str | None, typer.Option("--layers", help="Layers, e.g. '0,2,5-9' (default: all).")]
SentencesOption = Annotated[str | None, typer.Option("--sentences", help="Sentence indices, e.g. '0-4,7' (default: all).")]
ChunkOption = Annotated[int | None, typer.Option("--query-chunk", min=1, help="Queries per forward chunk (default: automatic, ~64 MiB of attention scores).")]


@app.command()
@handles_errors
@checks_outputs(out="dir")
def receivers(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    model: ModelOption = "smollm2-135m",
    out: OutOption = Path("results"),
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Receiver heads to keep.")] = 20,
    proximity_ignore: Annotated[int, typer.Option("--proximity-ignore", min=0, help="Vertical scores skip the next N sentences.")] = 4,
    control_depth: Annotated[bool, typer.Option("--control-depth", help="Rank-normalise each row before vertical scores.")] = False,
    include_layer_zero: Annotated[bool, typer.Option("--include-layer-zero", help="Rank layer-0 heads too (left out by default, as published).")] = False,
    query_chunk: ChunkOption = None,
    mode: ModeOption = "default",
    from_ta: FromTA = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Sentence-level attention and receiver heads: vertical scores, kurtosis, top-k heads, per-sentence scores."""
    from anchors.methods.receivers import ReceiverConfig, receiver_heads
    from anchors.methods.whitebox_files import write_receivers

    inputs = Inputs(traces, from_ta)
    items = list(inputs)
    if not items:  # before loading the model: the heads are ranked over the traces, so there must be some
        inputs.exit_if_invalid(skip_invalid)
        raise InputError("no valid traces to rank receiver heads on")
    handle = _load(model, device, dtype)
    config = ReceiverConfig(proximity_ignore=proximity_ignore, control_depth=control_depth, top_k=top_k,
                            exclude_layers=() if include_layer_zero else (0,), mode=check_mode(mode),  # type: ignore[arg-type]
                            query_chunk=query_chunk)
    failed: list[str] = []
    result = receiver_heads(handle, items, config, progress=console.track, on_error=_reporter(failed))
    write_receivers(result, out)
    rows = [(rank, layer, head, f"{result.mean_kurtosis[layer, head]:.2f}") for rank, (layer, head) in enumerate(result.heads)]
    console.table(f"Receiver heads of {len(result.traces)} trace(s)", ["rank", "layer", "head", "mean kurtosis"], rows[:10])
    reliability = "not computed (needs 2+ traces)" if result.reliability is None else f"{result.reliability:.3f}"
    console.stdout.print(f"split-half reliability: {reliability}; wrote {out}/receivers.json and {out}/<trace id>/receivers.*")
    _finish(inputs, skip_invalid, failed)


@app.command()
@handles_errors
@checks_outputs(out="dir")
def suppress(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    model: ModelOption = "smollm2-135m",
    out: OutOption = Path("results"),
    layers: LayersOption = None,
    heads: Annotated[str | None, typer.Option("--heads", help="Heads masked in those layers, e.g. '0-3' (default: all).")] = None,
    sentences: SentencesOption = None,
    temperature: Annotated[float, typer.Option("--temperature", min=0.01)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.9999,
    naive: Annotated[bool, typer.Option("--naive", help="Recompute every position instead of reusing the clean KV (slow reference).")] = False,
    query_chunk: ChunkOption = None,
    mode: ModeOption = "default",
    from_ta: FromTA = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Attention suppression matrix: mask each sentence's keys, measure every later token's KL."""
    from anchors.methods.suppression import SuppressionConfig, suppression_matrix
    from anchors.methods.whitebox_files import write_suppression

    inputs = Inputs(traces, from_ta)
    handle = _load(model, device, dtype)
    config = SuppressionConfig(layers=_indices(layers, "--layers"), heads=_indices(heads, "--heads"),
                               sources=_indices(sentences, "--sentences"), temperature=temperature, top_p=top_p,
                               mode=check_mode(mode), reuse_kv=not naive, query_chunk=query_chunk)  # type: ignore[arg-type]
    failed: list[str] = []
    for trace in inputs:
        with _per_trace(trace, failed):
            result = suppression_matrix(handle, trace, config, progress=console.track)
            write_suppression(result, out)
            console.stdout.print(f"{trace.id}: {len(result.sentences)} sentences → {out / trace.id}/suppression.*")
    _finish(inputs, skip_invalid, failed)


@app.command()
@handles_errors
@checks_outputs(out="dir")
def patch(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    model: ModelOption = "smollm2-135m",
    out: OutOption = Path("results"),
    replacements: Annotated[Path | None, typer.Option("--replacements", help="JSONL of {\"trace_id\", \"sentence\", \"text\"}: the counterfactual sentence for each S_i (default with --from-ta: chunks_resampled.json).")] = None,
    sites: Annotated[str, typer.Option("--sites", help="Comma-separated: resid (block input), attn (attention output), mlp (MLP output).")] = "resid",
    layers: LayersOption = None,
    sentences: SentencesOption = None,
    align: Annotated[str, typer.Option("--align", help="Pair the last ('end') or first ('start') min(m, m') tokens of S_i and T_i.")] = "end",
    answer: Annotated[str | None, typer.Option("--answer", help="Answer to force (default: extracted from each trace's answer text).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Layers patched per batched forward pass.")] = 8,
    query_chunk: ChunkOption = None,
    mode: ModeOption = "default",
    from_ta: FromTA = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Activation patching per sentence and layer: swap in a counterfactual sentence's activations, measure the forced answer."""
    from anchors.methods.patching import SITES, PatchingConfig, activation_patching
    from anchors.methods.whitebox_files import write_patching

    chosen = tuple(s.strip() for s in sites.split(",") if s.strip())
    if not chosen or any(s not in SITES for s in chosen):
        raise InputError(f"--sites must be a comma-separated subset of {', '.join(SITES)}, not {sites!r}")
    if align not in ("end", "start"):
        raise InputError(f"--align must be 'end' or 'start', not {align!r}")
    source = _replacement_source(replacements, from_ta, check_mode(mode))
    inputs = Inputs(traces, from_ta)
    handle = _load(model, device, dtype)
    config = PatchingConfig(sites=chosen, layers=_indices(layers, "--layers"), sentences=_indices(sentences, "--sentences"),  # type: ignore[arg-type]
                            align=align, answer=answer, mode=check_mode(mode), batch_size=batch_size, query_chunk=query_chunk)  # type: ignore[arg-type]
    failed: list[str] = []
    for trace in inputs:
        with _per_trace(trace, failed):
            result = activation_patching(handle, trace, source(trace), config, progress=console.track)
            write_patching(result, out)
            done = int((result.patched_tokens > 0).sum())
            console.stdout.print(f"{trace.id}: {done} sentence(s) patched → {out / trace.id}/patching.*")
    _finish(inputs, skip_invalid, failed)


# --- helpers -------------------------------------------------------------------------------------


def _load(model: str, device: str | None, dtype: str | None) -> Any:
    from anchors.models import load_model

    return load_model(model, device=device, dtype=dtype)


def _indices(text: str | None, option: str) -> tuple[int, ...] | None:
    """'0,2,5-9' -> (0, 2, 5, 6, 7, 8, 9); None -> None."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InputError(f"{option} takes indices like '0,2,5-9', not {text!r}") from None
    return tuple(out)


def _replacement_source(path: Path | None, from_ta: Path | None, mode: str) -> Callable[[Any], dict[int, str]]:
    from anchors.methods.replacements import (
        read_replacements,
        thought_anchors_replacements,
    )
    from anchors.traces.segment import split_sentences

    if path is not None:
        table = read_replacements(path)
        return lambda trace: table.get(trace.id, {})
    if from_ta is not None:
        return lambda trace: thought_anchors_replacements(trace, [s.text for s in split_sentences(trace.thinking, mode="paper")])
    raise InputError("patch needs counterfactual sentences: --replacements FILE.jsonl, or --from-ta DIR with chunks_resampled.json")


def _reporter(failed: list[str]) -> Callable[[Any, AnchorsError], None]:
    def report(trace: Any, error: AnchorsError) -> None:
        console.error(str(error))
        failed.append(trace.id)

    return report


@contextmanager
def _per_trace(trace: Any, failed: list[str]) -> Iterator[None]:
    """Report an AnchorsError of one trace and go on with the next (nothing else is lost). A model the
    white-box hooks cannot run would fail every trace: that one stops the command."""
    from anchors.models.hooks import UnsupportedModelError

    try:
        yield
    except UnsupportedModelError:
        raise
    except AnchorsError as error:
        _reporter(failed)(trace, error)


def _finish(inputs: Inputs, skip_invalid: bool, failed: list[str]) -> None:
    if failed:
        console.warn(f"{len(failed)} trace(s) failed: {', '.join(failed)}")
    inputs.exit_if_invalid(skip_invalid)
    if failed:
        raise typer.Exit(1)
