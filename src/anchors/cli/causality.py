"""`anchors causality`: the trace-level tests (does the trace cause the answer?)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import Inputs, app, checks_outputs, finish, handles_errors, limited, results_dir
from anchors.cli import options as opt
from anchors.cli.backends import build_embedder, build_sampler, sampler_options
from anchors.errors import InputError

TESTS = ("validity", "early", "filler", "mistakes", "paraphrase", "resilience")  # the default set
TestsOption = Annotated[str, typer.Option("--tests", help="Comma-separated: validity, early, filler, mistakes, paraphrase, resilience (the default set), and the studies hint (cued multiple-choice unfaithfulness: needs metadata.cue, e.g. traces generated from examples/choice_problems.jsonl) and insertions (off- vs on-policy inserted sentences). 'validity' needs no model.")]


@app.command()
@handles_errors
@checks_outputs(out="dir", store="file")
def causality(
    traces: opt.Traces = None,
    from_ta: opt.FromTA = None,
    model: opt.Model = "smollm2-135m",
    out: opt.Out = Path("results"),
    store: opt.Store = None,
    overwrite: opt.Overwrite = False,
    tests: TestsOption = "validity,early,filler,mistakes,paraphrase,resilience",
    limit: opt.Limit = None,
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
    seed: opt.Seed = 0,
    outcome: opt.Outcome = "math",
    sentences: opt.Sentences = None,
    trace_tokens: Annotated[int, typer.Option("--trace-tokens", min=1, help="hint: thinking budget of each sampled answer on the cued and uncued prompts (the cued trace is one of them).")] = 160,
    insert_text: Annotated[str | None, typer.Option("--insert-text", help="insertions: the hand-written sentence inserted where --insertions gives none (default: 'Wait, I think I made a mistake somewhere, so the answer must be different.').")] = None,
    insertions_file: Annotated[Path | None, typer.Option("--insertions", help="insertions: JSONL of {\"trace_id\", \"sentence_index\", \"text\"}: hand-written sentences per position (their positions are the ones tested, unless --sentences).")] = None,
    other_traces: Annotated[Path | None, typer.Option("--other-traces", help="insertions: another model's traces of the same problems (JSONL, matched by id): their sentence closest to the hand-written one is inserted too.")] = None,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="insertions: sentences the model writes at each position to pick the on-policy one from.")] = 6,
    template: opt.Template = None,
    backend: opt.Backend = "hf",
    base_url: opt.BaseUrl = None,
    server_kind: opt.ServerKind = "vllm",
    api_key_env: opt.ApiKeyEnv = "OPENAI_API_KEY",
    batch_size: opt.BatchSize = 32,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    concurrency: opt.Concurrency = None,
    ray: opt.Ray = None,
    ray_workers: opt.RayWorkers = None,
    embed_device: opt.EmbedDevice = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Trace-level causality tests: step validity, early answering (AOC), filler/swapped traces, inserted
    mistakes, paraphrase, resilience/CI++. Each trace's tables go to OUT/<trace id>/, the summary and the mean
    early-answering curve to OUT/."""
    backend_options = sampler_options(locals())  # first: locals() are the options here
    from anchors.analysis import InsertionInputs, run_causality_tests, write_reports

    inputs = Inputs(traces, from_ta, shard)
    loaded = limited(inputs, limit)
    if not loaded:
        inputs.exit_if_invalid(skip_invalid)
        raise InputError("no valid traces to test")
    config = causality_config(tests, samples=samples, points=points, continuations=continuations,
                              continue_tokens=continue_tokens, answer_tokens=answer_tokens,
                              mistakes_per_trace=mistakes_per_trace, paraphrase_fractions=paraphrase_fractions,
                              top_k=top_k, chains=chains, max_rounds=max_rounds, seed=seed, sentences=sentences,
                              trace_tokens=trace_tokens, insert_text=insert_text, candidates=candidates)
    if from_ta is not None:
        opt.math_only(outcome, "--from-ta (the authors' traces)")
    inputs_for_insertions = insertion_inputs(insertions_file, other_traces) if "insertions" in config.tests else InsertionInputs()
    results = results_dir(out, overwrite=overwrite, store=store)
    engine, sampler = _samplers(backend_options, results.store_path(), outcome) if config.needs_model else (None, None)
    result = run_causality_tests(loaded, config, results, sampler=sampler, importance=importance, progress=console.track,
                                 insertions=inputs_for_insertions,
                                 embed=build_embedder("all-MiniLM-L6-v2", embed_device, engine))
    _print_summary(result)
    write_reports(results, [t.id for t in loaded])
    console.stdout.print(f"wrote {out}/<trace id>/ for {len(loaded)} trace(s), and the summary over all of them to {out}/")
    finish(inputs, skip_invalid)


def _samplers(options: Any, store: Path, outcome: str) -> tuple[Any, Any]:
    """The engine the options name and the tests' sampler over it, reading answers with `outcome`."""
    engine, template = build_sampler(options)
    return engine, trace_sampler_for(engine, template, store, opt.command_outcome(outcome, template=template))


def trace_sampler_for(engine: Any, template: Any, store: Path, outcome: Any = None) -> Any:
    """The causality tests' sampler over any engine (local or server), reading and adding to the store, reading
    answers with `outcome` (default: math). A local engine also scores text (teacher forcing) for the insertions
    study's on-policyness; a server cannot."""
    from anchors.methods.causality.sampling import TraceSampler
    from anchors.models.scoring import continuation_logprobs
    from anchors.outcomes import MathOutcome

    handle = getattr(engine, "handle", None)
    count = (lambda text: len(handle.encode(text))) if handle is not None else None
    scorer = (lambda prompt, text: continuation_logprobs(handle, prompt, text)) if handle is not None else None
    return TraceSampler(sampler=engine, template=template, count_tokens=count, store=store,
                        outcome=outcome if outcome is not None else MathOutcome(), token_logprobs=scorer)


def insertion_inputs(handwritten: Path | None, other_traces: Path | None) -> Any:
    """The insertions study's files, read before any work: hand-written sentences and another model's traces."""
    import hashlib

    from anchors.analysis import InsertionInputs
    from anchors.traces.jsonl import read_traces

    table = read_insertions(handwritten) if handwritten is not None else None
    others = None
    if other_traces is not None:
        reader = read_traces(other_traces)
        others = {t.id: t for t in reader}
        if reader.errors:
            raise InputError(f"--other-traces {other_traces}: {len(reader.errors)} invalid line(s); fix them first")
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None  # noqa: E731
    return InsertionInputs(handwritten=table, other_traces=others,
                           identity={"insertions_sha256": digest(handwritten), "other_traces_sha256": digest(other_traces)})


def read_insertions(path: Path) -> dict[tuple[str, int], str]:
    """(trace id, sentence index) -> hand-written sentence, from JSONL lines {trace_id, sentence_index, text}."""
    from anchors.traces.jsonl import jsonl_values

    if not path.is_file():
        raise InputError(f"--insertions {path}: no such file")
    found: dict[tuple[str, int], str] = {}
    for where, record in jsonl_values(path):
        try:
            text = str(record["text"]).strip()
            if not text:
                raise ValueError("empty text")
            found[str(record["trace_id"]), int(record["sentence_index"])] = text
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where}: expected {{\"trace_id\", \"sentence_index\", \"text\"}} ({exc})") from None
    return found


def causality_config(tests: str = ",".join(TESTS), *, samples: int = 3, points: int = 5, continuations: int = 2,
                     continue_tokens: int = 48, answer_tokens: int = 16, mistakes_per_trace: int = 2,
                     paraphrase_fractions: str = "0.5", top_k: int = 1, chains: int = 2, max_rounds: int = 3,
                     seed: int = 0, sentences: str | None = None, trace_tokens: int = 160,
                     insert_text: str | None = None, candidates: int = 6) -> Any:
    """The tests' settings from the command's options (the defaults are the command's: analyze uses them too)."""
    from anchors.methods.causality.run import CausalityConfig
    from anchors.methods.causality.early_answering import EarlyAnsweringConfig
    from anchors.methods.causality.filler import FillerConfig
    from anchors.methods.causality.hint import HintConfig
    from anchors.methods.causality.insertions import InsertionsConfig
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
        hint=HintConfig(samples=samples, trace_tokens=trace_tokens, rollouts=continuations, **continuing),
        insertions=InsertionsConfig(samples=continuations, candidates=candidates, **continuing,
                                    **({"text": insert_text} if insert_text else {})),
        sentences=opt.parse_indices(sentences, "--sentences"),
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
