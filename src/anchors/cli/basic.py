"""Foundation commands: models, generate, split, grade, demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from anchors import console
from anchors.errors import InputError
from anchors.cli import Inputs, app, check_mode, checks_outputs, handles_errors
from anchors.cli import options as opt
from anchors.cli.backends import build_sampler, sampler_options


@app.command()
@handles_errors
def models() -> None:
    """List the models available here: bundled, tiny test models and converted copies in the cache."""
    from anchors.models import available_models

    rows = [(m.name, m.kind, m.status, _size(m.size_bytes), m.location) for m in available_models()]
    console.table("Models", ["name", "kind", "status", "size", "location"], rows)
    console.stdout.print("Any Hugging Face folder, hub name (when a hub is reachable) or .gguf file also works: --model PATH")


def _size(size_bytes: int | None) -> str:
    return "" if not size_bytes else f"{size_bytes / 2**20:.0f} MiB"


@app.command()
@handles_errors
@checks_outputs(out="file")
def split(
    traces: opt.Traces = None,
    mode: opt.Mode = "default",
    from_ta: opt.FromTA = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the sentences as JSONL here instead of printing them.")] = None,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Split each trace's thinking into sentences with character spans."""
    from anchors.traces.jsonl import write_jsonl
    from anchors.traces.segment import split_sentences

    inputs = Inputs(traces, from_ta, shard)
    rows = []
    for trace in inputs:
        sentences = split_sentences(trace.thinking, mode=check_mode(mode))
        rows.extend({"trace_id": trace.id, **dataclasses.asdict(s)} for s in sentences)
        if out is None:
            _print_sentences(trace.id, sentences)
    if out is not None:
        write_jsonl(out, rows)
        console.stdout.print(f"wrote {len(rows)} sentences to {out}")
    inputs.exit_if_invalid(skip_invalid)


def _print_sentences(trace_id: str, sentences: list[Any]) -> None:
    rows = [(s.index, f"{s.start}–{s.end}", s.text) for s in sentences]
    console.table(f"{trace_id}: {len(sentences)} sentences", ["#", "chars", "text"], rows)


@app.command()
@handles_errors
@checks_outputs(out="file")
def grade(
    traces: opt.Traces = None,
    mode: opt.Mode = "default",
    method: Annotated[Literal["boxed_last", "boxed_first", "answer_is", "last_number", "choice", "auto"] | None, typer.Option("--method", help="Answer extractor: boxed_last, boxed_first, answer_is, last_number, choice, auto (default: the mode's).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer comparison before giving up with status 'timeout'.")] = 5.0,
    from_ta: opt.FromTA = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write one JSON line per trace here.")] = None,
    outcome: opt.Outcome = "math",
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Extract each trace's final answer and grade it against the gold answer (or read it with --outcome)."""
    from anchors.traces.jsonl import write_jsonl

    reader = _answer_reader(outcome, check_mode(mode), method, timeout)
    inputs = Inputs(traces, from_ta, shard)
    rows = []
    for trace in inputs:
        rows.append({"trace_id": trace.id, **reader(trace), "gold": trace.gold_answer})
    console.table("Grades", ["trace", "answer", "gold", "correct", "status"],
                  [(r["trace_id"], r["answer"], r["gold"], r["correct"], r["status"]) for r in rows])
    if out is not None:
        write_jsonl(out, rows)
    inputs.exit_if_invalid(skip_invalid)


def _answer_reader(outcome: str, mode: str, method: str | None, timeout: float) -> Any:
    """trace -> {answer, key, correct, status[, detail]}: today's math grading, or the --outcome's reading."""
    if outcome.strip() == "math":
        from anchors.traces.answers import grade as grade_answer

        def read_math(trace: Any) -> dict[str, Any]:
            result = grade_answer(trace.answer_text, trace.gold_answer, mode=mode, method=method, timeout=timeout)  # type: ignore[arg-type]
            return {"answer": result.answer, "key": result.key, "correct": result.correct,
                    "status": str(result.status.value)}

        return read_math
    if method is not None:
        raise InputError("--method picks the math answer's extractor; it does not apply with --outcome " + outcome)
    reader = opt.command_outcome(outcome, mode=mode)

    def read(trace: Any) -> dict[str, Any]:
        result = reader.grade(trace.answer_text, trace.gold_answer, trace=trace)
        return {"answer": result.answer, "key": result.key, "correct": result.correct, "status": result.status.value,
                "detail": result.detail or None}

    return read


@app.command()
@handles_errors
@checks_outputs(out="file")
def generate(
    model: opt.Model = "smollm2-135m",
    problem: Annotated[str | None, typer.Option("--problem", help="One problem text (its trace id: --id, else a hash of the text).")] = None,
    problem_id: Annotated[str | None, typer.Option("--id", help="The trace id of --problem (letters, digits, . _ -).")] = None,
    gold: Annotated[str | None, typer.Option("--gold", help="The gold answer of --problem, for grading.")] = None,
    problems: Annotated[Path | None, typer.Option("--problems", help="JSONL of problems: {\"id\", \"problem\", \"gold_answer\"}.")] = None,
    out: Annotated[Path, typer.Option("--out", help="JSONL file the traces are appended to (problems already in it are skipped).")] = Path("results/traces.jsonl"),
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N problems.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Token budget of the thinking.")] = 320,
    temperature: opt.Temperature = 0.6,
    top_p: opt.TopP = 0.95,
    seed: opt.Seed = 0,
    template: opt.Template = None,
    device: opt.Device = None,
    dtype: opt.Dtype = None,
    backend: opt.Backend = "hf",
    base_url: opt.BaseUrl = None,
    server_kind: opt.ServerKind = "vllm",
    api_key_env: opt.ApiKeyEnv = "OPENAI_API_KEY",
    concurrency: opt.Concurrency = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Generate on-policy reasoning traces with a local model or an OpenAI-compatible server and append them to
    a JSONL file."""
    backend_options = sampler_options(locals())  # first: locals() are the options here
    from anchors.rollouts.generate import GenerationConfig, generate_traces, problems_to_run

    todo, reader = problems_to_run(problem=problem, problems_path=problems, out=out, limit=limit, problem_id=problem_id,
                                   gold_answer=gold)
    for bad in reader.problems if reader is not None else ():
        console.line_problem(bad)
    if not todo:
        console.stdout.print(f"nothing to do: every valid problem already has a trace in {out}")
    else:
        config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        traces = generate_traces(_generator(backend_options), todo, out=out, config=config, progress=console.track)
        console.stdout.print(f"wrote {sum(1 for _ in traces)} trace(s) to {out}")
    if reader is not None and reader.errors and not skip_invalid:
        raise typer.Exit(1)


def _generator(options: Any) -> Any:
    """A server's sampler (--backend openai: build_sampler says what does not fit), else the local model."""
    if options.backend == "openai" or options.base_url or options.concurrency is not None:
        from anchors.rollouts.generate import SamplerModel

        sampler, template = build_sampler(options)
        return SamplerModel(sampler, template, options.model)
    from anchors.models import load_model

    return load_model(options.model, device=options.device, dtype=options.dtype, template=options.template)


@app.command()
@handles_errors
@checks_outputs(out="dir")
def demo(
    model: Annotated[str, typer.Option("--model", help="Model to run the demo on.")] = "smollm2-135m",
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo's files.")] = Path("results/demo"),
) -> None:
    """The main job on the bundled model: generate a trace for an example problem, split and grade it, then
    score the committed example trace (which sentences cause its answer)."""
    from anchors.cli.score import score
    from anchors.paths import example_file

    traces = out / "traces.jsonl"
    generate(model=model, problems=example_file("problems.jsonl", "pass --problems FILE or --problem TEXT"), out=traces,
             limit=1)
    split(traces=traces)
    grade(traces=traces)
    score(traces=example_file("traces.jsonl", "pass a TRACES.jsonl file"), model=model, out=out / "scores", limit=1)
