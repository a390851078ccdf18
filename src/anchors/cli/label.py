"""`anchors label`: sentence function tags, and `anchors label --fit` to refit the offline classifier."""

from __future__ import annotations

import collections
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from anchors import console
from anchors.cli import Inputs, app, check_mode, checks_outputs, handles_errors, results_dir
from anchors.cli import options as opt
from anchors.errors import AnchorsError


@app.command()
@handles_errors
@checks_outputs(out="auto", save_labelled="file")
def label(
    traces: Annotated[Optional[Path], typer.Argument(help="JSONL file of traces to label.")] = None,
    from_ta: opt.FromTA = None,
    mode: opt.Mode = "default",
    labeller: Annotated[Literal["auto", "offline", "llm"], typer.Option("--labeller", help="auto (LLM if an endpoint is configured, else offline), offline or llm.")] = "auto",
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (default: $ANCHORS_LABEL_BASE_URL).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Model name sent to the endpoint (default: $ANCHORS_LABEL_MODEL or 'default').")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the endpoint's API key (never stored).")] = "ANCHORS_LABEL_API_KEY",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sentences per LLM request.")] = 60,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="Retries per request on connection errors, 429 and 5xx.")] = 3,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask the endpoint again even when labels are cached.")] = False,
    taxonomy: Annotated[Optional[str], typer.Option("--taxonomy", help="Taxonomy JSON file (default: the built-in thought-anchors tags).")] = None,
    tagger: Annotated[Optional[Path], typer.Option("--tagger", help="Offline model (.npz from --fit) instead of the bundled one.")] = None,
    fit: Annotated[Optional[Path], typer.Option("--fit", help="Refit the offline classifier on this labelled set: a JSONL file, or a Thought Anchors folder (chunks_labeled.json).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="A results folder (the tags of each trace go to OUT/<trace id>/, next to other methods' results), or a .jsonl file (one line per sentence); default: print. With --fit: the model file (default results/tagger.npz).")] = None,
    overwrite: opt.Overwrite = False,
    save_labelled: Annotated[Optional[Path], typer.Option("--save-labelled", help="Also write the labels as a labelled set (one trace per line, with its problem) that --fit trains on: label a sample with an LLM endpoint, then fit a fast offline tagger to it.")] = None,
    text_only: Annotated[bool, typer.Option("--text-only", help="With --fit: leave sentence embeddings out (labels ~50x faster, a little less accurate).")] = False,
    shard: opt.Shard = None,
    skip_invalid: opt.SkipInvalid = False,
) -> None:
    """Tag each sentence with its function (plan generation, active computation, …), or refit the offline tagger."""
    if fit is not None:
        _fit(fit, taxonomy, out or Path("results/tagger.npz"), text_only, skip_invalid)
        return
    if text_only:
        raise AnchorsError("--text-only only applies to fitting: anchors label --fit LABELLED --text-only")
    from anchors.labels.api import resolve_labeller

    chosen = resolve_labeller(labeller, taxonomy=taxonomy, llm=_llm_config(base_url, model, api_key_env, batch_size, max_retries, no_cache),  # type: ignore[arg-type]
                              tagger=tagger)
    console.stderr.print(f"labeller: {chosen.name}", highlight=False)
    inputs = Inputs(traces, from_ta, shard)
    items = list(inputs)
    folder = _results_folder(out, overwrite, chosen, items, check_mode(mode))
    labelled = _label_traces(chosen, items, check_mode(mode), folder, show=out is None)
    _write_labels(labelled, items, out, folder, save_labelled)
    inputs.exit_if_invalid(skip_invalid)


def _label_traces(labeller: Any, traces: list[Any], mode: str, folder: Any, show: bool) -> list[tuple[Any, Any, Any]]:
    """(trace, its sentences, its labels) per trace, each written to the results folder when there is one; the
    labeller's repairs are printed as warnings as they happen."""
    from anchors.labels.api import label_traces
    from anchors.labels.result import LabelWarning
    from anchors.traces.segment import split_sentences

    split = [split_sentences(trace.thinking, mode=mode) for trace in traces]  # type: ignore[arg-type]
    _embed_ahead(labeller, [s.text for sentences in split for s in sentences])
    done = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LabelWarning)
        labels = label_traces(traces, labeller=labeller, mode=mode, progress=console.track)  # type: ignore[arg-type]
        for trace, sentences, result in zip(traces, split, labels):
            for warning in caught:
                console.warn(str(warning.message))
            caught.clear()
            if folder is not None:
                from anchors.results.save import save_tags

                save_tags(folder, trace, result, mode)  # type: ignore[arg-type]
            if show:
                console.table(f"{trace.id}: {len(result)} sentences", ["#", "tag", "text"],
                              [(i, tag, text) for i, (tag, text) in enumerate(zip(result.tags, result.sentences))])
            done.append((trace, sentences, result))
    return done


def _write_labels(labelled: list[tuple[Any, Any, Any]], traces: list[Any], out: Path | None, folder: Any,
                  save_labelled: Path | None) -> None:
    from anchors.labels.dataset import labelled_from_result
    from anchors.traces.jsonl import write_jsonl

    counts = collections.Counter(tag for _, _, result in labelled for tag in result.tags)
    if folder is not None:
        from anchors.analysis import write_reports

        write_reports(folder, [t.id for t in traces])
        console.table(f"wrote the tags of {len(traces)} trace(s) to {out}/<trace id>/", ["tag", "sentences"], counts.most_common())
    elif out is not None:
        rows = [{**row, "start": s.start, "end": s.end} for _, sentences, result in labelled
                for row, s in zip(result.to_records(), sentences)]
        write_jsonl(out, rows)
        console.table(f"wrote {len(rows)} labelled sentences to {out}", ["tag", "sentences"], counts.most_common())
    if save_labelled is not None:
        sets = [labelled_from_result(result, trace.id, trace.problem).model_dump(mode="json", exclude_none=True)
                for trace, _, result in labelled if len(result)]
        write_jsonl(save_labelled, sets)
        console.stdout.print(f"wrote {len(sets)} labelled traces to {save_labelled}; fit a tagger on them with: "
                             f"anchors label --fit {save_labelled} --out tagger.npz", highlight=False, soft_wrap=True)


def _results_folder(out: Path | None, overwrite: bool, labeller: Any, traces: list[Any], mode: str) -> Any:
    """A results folder when --out is not a .jsonl file (checked before labelling), else None."""
    if out is None or out.suffix == ".jsonl":
        return None
    from anchors.results.save import tags_settings

    folder = results_dir(out, overwrite=overwrite)
    for trace in traces:
        folder.check("tags", trace, mode, tags_settings(labeller.name, labeller.taxonomy.name), None)
    return folder


def _embed_ahead(labeller: Any, texts: list[str], chunk: int = 2048) -> None:
    """The offline tagger's sentence embeddings for all traces first, in large batches (with a progress bar)."""
    from anchors.labels.offline import OfflineTagger

    if not isinstance(labeller, OfflineTagger) or labeller.config.embedder is None or not texts:
        return
    chunks = [texts[start:start + chunk] for start in range(0, len(texts), chunk)]
    for part in console.track(chunks, f"embedding {len(texts)} sentences"):
        labeller.embed_ahead(part)


def _llm_config(base_url: str | None, model: str | None, api_key_env: str, batch_size: int, max_retries: int,
                no_cache: bool) -> Any:
    from anchors.labels.endpoint import EndpointConfig
    from anchors.labels.llm import LLMConfig

    default = LLMConfig.from_env()
    url = base_url or (default.endpoint.base_url if default else None)
    if url is None:
        return None
    name = model or (default.endpoint.model if default else "default")
    endpoint = EndpointConfig(base_url=url, model=name, api_key_env=api_key_env, max_retries=max_retries)
    return LLMConfig(endpoint=endpoint, batch_size=batch_size, use_cache=not no_cache)


def _fit(source: Path, taxonomy: str | None, out: Path, text_only: bool, skip_invalid: bool) -> None:
    from anchors.labels.dataset import read_labelled
    from anchors.labels.offline import OfflineConfig, fit_offline

    if out.suffix != ".npz":
        raise AnchorsError(f"--out {out}: the tagger model is written as a .npz file (plain arrays); give a path ending in .npz")
    skipped: list[Any] = []
    traces = read_labelled(source, on_skip=lambda item: (skipped.append(item), console.warn(str(item))))
    config = OfflineConfig(embedder=None) if text_only else OfflineConfig()
    model = fit_offline(traces, taxonomy, config, trained_on=source.name)
    model.save(out)
    counts = collections.Counter(tag for t in traces for tag in t.primary_tags)
    console.stdout.print(f"fitted on {len(traces)} traces, {sum(counts.values())} sentences from {source}", highlight=False)
    console.table("training sentences per tag", ["tag", "sentences"], [(tag, counts.get(tag, 0)) for tag in model.taxonomy.labels])
    missing = [tag for tag in model.taxonomy.names if tag not in model.classes]
    if missing:
        console.warn(f"no training sentences for {', '.join(missing)}: the model never predicts them")
    console.stdout.print(f"wrote {out}; use it with: anchors label TRACES.jsonl --tagger {out}", highlight=False, soft_wrap=True)
    if skipped:
        console.warn(f"{len(skipped)} damaged Thought Anchors folder(s) left out of the fit"
                     + ("" if skip_invalid else " (exit 1; --skip-invalid to exit 0)"))
        if not skip_invalid:
            raise typer.Exit(1)
