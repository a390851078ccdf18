"""Foundation commands: models, generate, split, grade, demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from anchors import console
from anchors.cli.options import OutcomeOption, command_outcome
from anchors.errors import InputError
from anchors.cli import (
    FromTA,
    Inputs,
    ModeOption,
    ShardOption,
    SkipInvalid,
    app,
    check_mode,
    checks_outputs,
    handles_errors,
)
from anchors.cli.backends import (
    ApiKeyEnvOption,
    BackendOption,
    BaseUrlOption,
    ConcurrencyOption,
    DtypeOption,
    ModelOption,
    ServerKindOption,
    TemplateOption,
    build_sampler,
)


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
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    mode: ModeOption = "default",
    from_ta: FromTA = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the sentences as JSONL here instead of printing them.")] = None,
    shard: ShardOption = None,
    skip_invalid: SkipInvalid = False,
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
    traces: Annotated[Path | None, typer.Argument(help="JSONL file of traces.")] = None,
    mode: ModeOption = "default",
    method: Annotated[Literal["boxed_last", "boxed_first", "answer_is", "last_number", "choice", "auto"] | None, typer.Option("--method", help="Answer extractor: boxed_last, boxed_first, answer_is, last_number, choice, auto (default: the mode's).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer comparison before giving up with status 'timeout'.")] = 5.0,
    from_ta: FromTA = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write one JSON line per trace here.")] = None,
    outcome: OutcomeOption = "math",
    shard: ShardOption = None,
    skip_invalid: SkipInvalid = False,
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
    reader = command_outcome(outcome, mode=mode)

    def read(trace: Any) -> dict[str, Any]:
        result = reader.grade(trace.answer_text, trace.gold_answer, trace=trace)
        return {"answer": result.answer, "key": result.key, "correct": result.correct, "status": result.status.value,
                "detail": result.detail or None}

    return read


@app.command()
@handles_errors
@checks_outputs(out="file")
def generate(
    model: ModelOption = "smollm2-135m",
    problem: Annotated[str | None, typer.Option("--problem", help="One problem text (its trace id: --id, else a hash of the text).")] = None,
    problem_id: Annotated[str | None, typer.Option("--id", help="The trace id of --problem (letters, digits, . _ -).")] = None,
    gold: Annotated[str | None, typer.Option("--gold", help="The gold answer of --problem, for grading.")] = None,
    problems: Annotated[Path | None, typer.Option("--problems", help="JSONL of problems: {\"id\", \"problem\", \"gold_answer\"}.")] = None,
    out: Annotated[Path, typer.Option("--out", help="JSONL file the traces are appended to (problems already in it are skipped).")] = Path("results/traces.jsonl"),
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N problems.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Token budget of the thinking.")] = 320,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.6,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    template: TemplateOption = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 (default: CUDA when present).")] = None,
    dtype: DtypeOption = None,
    backend: BackendOption = "hf",
    base_url: BaseUrlOption = None,
    server_kind: ServerKindOption = "vllm",
    api_key_env: ApiKeyEnvOption = "OPENAI_API_KEY",
    concurrency: ConcurrencyOption = None,
    skip_invalid: SkipInvalid = False,
) -> None:
    """Generate on-policy reasoning traces with a local model or an OpenAI-compatible server and append them to
    a JSONL file."""
    from anchors.rollouts.generate import (
        GenerationConfig,
        SamplerModel,
        generate_traces,
        problems_to_run,
    )

    todo, reader = problems_to_run(problem=problem, problems_path=problems, out=out, limit=limit, problem_id=problem_id,
                                   gold_answer=gold)
    if reader is not None:
        for bad in reader.problems:
            console.line_problem(bad)
    skipped = bool(reader is not None and reader.errors and not skip_invalid)
    if not todo:
        console.stdout.print(f"nothing to do: every valid problem already has a trace in {out}")
        if skipped:
            raise typer.Exit(1)
        return
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    if backend == "openai" or base_url or concurrency is not None:  # build_sampler says what does not fit
        sampler, prompt_template = build_sampler(model, backend, base_url, server_kind, api_key_env, 1, device,
                                                 dtype, template, concurrency=concurrency)
        traces = generate_traces(SamplerModel(sampler, prompt_template, model), todo, out=out, config=config,
                                 progress=console.track)
    else:
        traces = generate_traces(model, todo, out=out, config=config, template=template, device=device, dtype=dtype,
                                 progress=console.track)
    written = 0
    for _ in traces:
        written += 1
    console.stdout.print(f"wrote {written} trace(s) to {out}")
    if skipped:
        raise typer.Exit(1)


@app.command()
@handles_errors
@checks_outputs(out="dir")
def demo(
    model: Annotated[str, typer.Option("--model", help="Model to run the demo on.")] = "smollm2-135m",
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo's files.")] = Path("results/demo"),
) -> None:
    """The main job on the bundled model: generate a trace for an example problem, split and grade it, then
    score the committed example trace (which sentences cause its answer)."""
    from anchors.cli.score import score_example
    from anchors.rollouts.generate import example_problems_path

    traces = out / "traces.jsonl"
    generate(model=model, problems=example_problems_path(), out=traces, limit=1)
    split(traces=traces)
    grade(traces=traces)
    score_example(model=model, out=out / "scores")
