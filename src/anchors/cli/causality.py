"""`anchors causality`: the trace-level tests (does the trace cause the answer?)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import FromTA, Inputs, SkipInvalid, app, checks_outputs, handles_errors
from anchors.errors import InputError

TestsOption = Annotated[str, typer.Option("--tests", help="Comma-separated: validity, early, filler, mistakes, paraphrase, resilience (default: all). 'validity' needs no model.")]


@app.command()
@handles_errors
@checks_outputs(out="dir")
def causality(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    from_ta: FromTA = None,
    model: Annotated[str, typer.Option("--model", help="Model to sample from (alias, folder, .gguf, hub name).")] = "smollm2-135m",
    out: Annotated[Path, typer.Option("--out", help="Folder for the tables, curves and summary.")] = Path("results/causality"),
    tests: TestsOption = "validity,early,filler,mistakes,paraphrase,resilience",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N traces.")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Forced answers per truncation point / condition.")] = 3,
    points: Annotated[int, typer.Option("--points", min=0, help="Early-answering truncation points per trace (0: every sentence boundary).")] = 5,
    continuations: Annotated[int, typer.Option("--continuations", min=1, help="On-policy continuations per condition (mistakes, paraphrase, resilience baseline).")] = 2,
    continue_tokens: Annotated[int, typer.Option("--continue-tokens", min=1, help="Token budget of each continuation.")] = 48,
    answer_tokens: Annotated[int, typer.Option("--answer-tokens", min=1, help="Tokens sampled after a forced '\\boxed{'.")] = 12,
    mistakes_per_trace: Annotated[int, typer.Option("--mistakes-per-trace", min=1, help="Sentences corrupted per trace.")] = 2,
    paraphrase_fractions: Annotated[str, typer.Option("--paraphrase-fractions", help="Comma-separated shares of the trace to paraphrase.")] = "0.5",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Sentences per trace for resilience / CI++.")] = 1,
    chains: Annotated[int, typer.Option("--chains", min=1, help="Resampling chains per resilience sentence.")] = 2,
    max_rounds: Annotated[int, typer.Option("--max-rounds", min=1, help="Rounds before a resilience chain is censored.")] = 3,
    importance: Annotated[str | None, typer.Option("--importance", help="Resilience sentences: a JSONL of {trace_id, sentence_index, score}, or 'ta' for the authors' counterfactual_importance_kl (with --from-ta); default evenly spaced.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    template: Annotated[str | None, typer.Option("--template", help="paper, r1-distill, qwen3 or chat (default: chosen from the model).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32 or bfloat16.")] = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Trace-level causality tests: step validity, early answering (AOC), filler/swapped traces, inserted
    mistakes, paraphrase, resilience/CI++. Writes tables (JSONL/CSV), curves (JSON/NPZ) and summary.json."""
    from anchors.methods.causality import run_causality, write_causality

    inputs = Inputs(traces, from_ta)
    loaded = list(inputs)
    loaded = loaded[:limit] if limit else loaded
    if not loaded:
        inputs.exit_if_invalid(skip_invalid)
        raise InputError("no valid traces to test")
    config = _config(tests, samples, points, continuations, continue_tokens, answer_tokens, mistakes_per_trace,
                     paraphrase_fractions, top_k, chains, max_rounds, seed)
    scores = _importance(importance, loaded)  # before loading a model: bad input fails fast
    sampler = _sampler(model, template=template, device=device, dtype=dtype) if config.needs_model else None
    result = run_causality(loaded, config, sampler=sampler, sentence_scores=scores, progress=console.track)
    files = write_causality(result, out, inputs=str(traces or from_ta))
    _print_summary(result)
    console.stdout.print(f"wrote {len(files)} files to {out}")
    inputs.exit_if_invalid(skip_invalid)


def _sampler(model: str, **load_options: Any) -> Any:
    # the one place the CLI builds a sampler (see anchors.methods.trace_sampling.trace_sampler)
    from anchors.methods.trace_sampling import trace_sampler

    return trace_sampler(model, **{k: v for k, v in load_options.items() if v is not None})


def _config(tests: str, samples: int, points: int, continuations: int, continue_tokens: int, answer_tokens: int,
            mistakes_per_trace: int, paraphrase_fractions: str, top_k: int, chains: int, max_rounds: int, seed: int) -> Any:
    from anchors.methods.causality import CausalityConfig
    from anchors.methods.early_answering import EarlyAnsweringConfig
    from anchors.methods.filler import FillerConfig
    from anchors.methods.mistakes import MistakesConfig
    from anchors.methods.paraphrase import ParaphraseConfig
    from anchors.methods.resilience import ResilienceConfig

    chosen = tuple(t.strip() for t in tests.split(",") if t.strip())
    continuing = {"continue_tokens": continue_tokens, "answer_tokens": answer_tokens, "seed": seed}
    return CausalityConfig(
        tests=chosen,
        early=EarlyAnsweringConfig(samples=samples, points=points or None, answer_tokens=answer_tokens, seed=seed),
        filler=FillerConfig(samples=samples, answer_tokens=answer_tokens, seed=seed),
        mistakes=MistakesConfig(sentences_per_trace=mistakes_per_trace, samples=continuations, **continuing),
        paraphrase=ParaphraseConfig(fractions=_fractions(paraphrase_fractions), samples=continuations, **continuing),
        resilience=ResilienceConfig(top_k=top_k, chains=chains, max_rounds=max_rounds, baseline_samples=continuations, **continuing),
    )  # fmt: skip


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--paraphrase-fractions: expected numbers like 0.5,1.0; got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise InputError(f"--paraphrase-fractions: each share must lie in (0, 1]; got {text!r}")
    return values


def _importance(option: str | None, traces: list[Any]) -> dict[str, list[float]] | None:
    if option is None:
        return None
    if option == "ta":
        from anchors.methods.resilience import importance_from_thought_anchors

        scores = importance_from_thought_anchors(traces)
        if not scores:
            raise InputError("--importance ta: none of the traces comes with the authors' chunks_labeled.json (use --from-ta DIR)")
        return scores
    return read_importance(Path(option))


def read_importance(path: Path) -> dict[str, list[float]]:
    """trace id -> scores by sentence index, from JSONL lines {trace_id, sentence_index, score}; missing
    sentences get NaN (never chosen)."""
    from anchors.traces.jsonl import check_nesting

    if not path.is_file():
        raise InputError(f"{path}: no such importance file")
    found: dict[str, dict[int, float]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            check_nesting(line)
            record = json.loads(line)
            found.setdefault(str(record["trace_id"]), {})[int(record["sentence_index"])] = float(record["score"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: expected {{\"trace_id\", \"sentence_index\", \"score\"}} ({exc})") from None
    return {trace: [scores.get(i, float("nan")) for i in range(max(scores) + 1)] for trace, scores in found.items()}


def _print_summary(result: Any) -> None:
    if result.validity is not None:
        rows = [(r.validity, r.correct, r.incorrect, r.ungraded, r.total, _fmt(r.accuracy)) for r in result.validity.contingency()]
        console.table("Step validity × answer correctness (traces)", ["trace", "correct", "incorrect", "ungraded", "total", "accuracy"], rows)
    table = result.to_pandas()
    rows = [(r.test, r.quantity, _fmt(r.value)) for r in table.itertuples()]
    console.table("Trace-level causality", ["test", "quantity", "value"], rows)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.3f}"
    return str(value)
