"""`anchors causality`: the trace-level tests (does the trace cause the answer?)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import (
    FromTA,
    Inputs,
    OutOption,
    OverwriteOption,
    ShardOption,
    SkipInvalid,
    StoreOption,
    app,
    checks_outputs,
    finish,
    handles_errors,
    limited,
    results_dir,
)
from anchors.cli.backends import (
    ApiKeyEnvOption,
    BackendOption,
    BaseUrlOption,
    BatchSizeOption,
    ConcurrencyOption,
    DeviceOption,
    DtypeOption,
    EmbedDeviceOption,
    ModelOption,
    RayOption,
    RayWorkersOption,
    ServerKindOption,
    TemplateOption,
    build_embedder,
    build_sampler,
)
from anchors.errors import InputError

TESTS = ("validity", "early", "filler", "mistakes", "paraphrase", "resilience")
TestsOption = Annotated[str, typer.Option("--tests", help="Comma-separated: validity, early, filler, mistakes, paraphrase, resilience (default: all). 'validity' needs no model.")]


@app.command()
@handles_errors
@checks_outputs(out="dir", store="file")
def causality(
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    from_ta: FromTA = None,
    model: ModelOption = "smollm2-135m",
    out: OutOption = Path("results"),
    store: StoreOption = None,
    overwrite: OverwriteOption = False,
    tests: TestsOption = "validity,early,filler,mistakes,paraphrase,resilience",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N traces.")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Forced answers per truncation point / condition.")] = 3,
    points: Annotated[int, typer.Option("--points", min=0, help="Early-answering truncation points per trace (0: every sentence boundary).")] = 5,
    continuations: Annotated[int, typer.Option("--continuations", min=1, help="On-policy continuations per condition (mistakes, paraphrase, resilience baseline).")] = 2,
    continue_tokens: Annotated[int, typer.Option("--continue-tokens", min=1, help="Token budget of each continuation.")] = 48,
    answer_tokens: Annotated[int, typer.Option("--answer-tokens", min=1, help="Tokens sampled after a forced '\\boxed{' (16, as anchors score's forced answers: the same requests are then shared).")] = 16,
    mistakes_per_trace: Annotated[int, typer.Option("--mistakes-per-trace", min=1, help="Sentences corrupted per trace.")] = 2,
    paraphrase_fractions: Annotated[str, typer.Option("--paraphrase-fractions", help="Comma-separated shares of the trace to paraphrase.")] = "0.5",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Sentences per trace for resilience / CI++.")] = 1,
    chains: Annotated[int, typer.Option("--chains", min=1, help="Resampling chains per resilience sentence.")] = 2,
    max_rounds: Annotated[int, typer.Option("--max-rounds", min=1, help="Rounds before a resilience chain is censored.")] = 3,
    importance: Annotated[str | None, typer.Option("--importance", help="Resilience sentences: the top by a per-sentence column of the results in OUT (e.g. counterfactual_importance_kl from anchors score, receiver_score), 'ta' for the authors' counterfactual_importance_kl (with --from-ta), or a JSONL of {trace_id, sentence_index, score}; default evenly spaced.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    template: TemplateOption = None,
    backend: BackendOption = "hf",
    base_url: BaseUrlOption = None,
    server_kind: ServerKindOption = "vllm",
    api_key_env: ApiKeyEnvOption = "OPENAI_API_KEY",
    batch_size: BatchSizeOption = 32,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    concurrency: ConcurrencyOption = None,
    ray: RayOption = None,
    ray_workers: RayWorkersOption = None,
    embed_device: EmbedDeviceOption = None,
    shard: ShardOption = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Trace-level causality tests: step validity, early answering (AOC), filler/swapped traces, inserted
    mistakes, paraphrase, resilience/CI++. Each trace's tables go to OUT/<trace id>/, the summary and the mean
    early-answering curve to OUT/."""
    from anchors.analysis import run_causality_tests, write_reports

    inputs = Inputs(traces, from_ta, shard)
    loaded = limited(inputs, limit)
    if not loaded:
        inputs.exit_if_invalid(skip_invalid)
        raise InputError("no valid traces to test")
    config = causality_config(tests, samples=samples, points=points, continuations=continuations,
                              continue_tokens=continue_tokens, answer_tokens=answer_tokens,
                              mistakes_per_trace=mistakes_per_trace, paraphrase_fractions=paraphrase_fractions,
                              top_k=top_k, chains=chains, max_rounds=max_rounds, seed=seed)
    results = results_dir(out, overwrite=overwrite, store=store)
    sampler, engine = None, None
    if config.needs_model:
        engine, prompt_template = build_sampler(model, backend, base_url, server_kind, api_key_env, batch_size, device,
                                                dtype, template, concurrency=concurrency, ray=ray,
                                                ray_workers=ray_workers)
        sampler = trace_sampler_for(engine, prompt_template, results.store_path())
    result = run_causality_tests(loaded, config, results, sampler=sampler, importance=importance, progress=console.track,
                                 embed=build_embedder("all-MiniLM-L6-v2", embed_device, engine))
    _print_summary(result)
    write_reports(results, [t.id for t in loaded])
    console.stdout.print(f"wrote {out}/<trace id>/ for {len(loaded)} trace(s), and the summary over all of them to {out}/")
    finish(inputs, skip_invalid)


def trace_sampler_for(engine: Any, template: Any, store: Path) -> Any:
    """The causality tests' sampler over any engine (local or server), reading and adding to the store."""
    from anchors.methods.causality.sampling import TraceSampler

    handle = getattr(engine, "handle", None)
    count = (lambda text: len(handle.encode(text))) if handle is not None else None
    return TraceSampler(sampler=engine, template=template, count_tokens=count, store=store)


def causality_config(tests: str = ",".join(TESTS), *, samples: int = 3, points: int = 5, continuations: int = 2,
                     continue_tokens: int = 48, answer_tokens: int = 16, mistakes_per_trace: int = 2,
                     paraphrase_fractions: str = "0.5", top_k: int = 1, chains: int = 2, max_rounds: int = 3,
                     seed: int = 0) -> Any:
    """The tests' settings from the command's options (the defaults are the command's: analyze uses them too)."""
    from anchors.methods.causality.run import CausalityConfig
    from anchors.methods.causality.early_answering import EarlyAnsweringConfig
    from anchors.methods.causality.filler import FillerConfig
    from anchors.methods.causality.mistakes import MistakesConfig
    from anchors.methods.causality.paraphrase import ParaphraseConfig
    from anchors.methods.causality.resilience import ResilienceConfig

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
