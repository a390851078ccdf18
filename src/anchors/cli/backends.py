"""The sampler and embedder the sampling commands build from their options (resample, score, causality, analyze,
generate), and their --dry-run report."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anchors.rollouts.factory import SamplerOptions

# The Ray samplers a command opened: their workers are stopped when the command ends (see close_samplers).
_OPEN: list[Any] = []


def sampler_options(parameters: dict[str, Any]) -> SamplerOptions:
    """The SamplerOptions a command's parameters name (`locals()` at the top of its body: the sampling options are
    named as the fields are, --model → model; a command without one of them gets the library's default)."""
    from anchors.rollouts.factory import SamplerOptions

    return SamplerOptions(**{f.name: parameters[f.name] for f in fields(SamplerOptions) if f.name in parameters})


def build_sampler(options: SamplerOptions) -> tuple[Any, Any]:
    """The sampler and prompt template of `options` (anchors.rollouts.factory.open_sampler: every command that
    samples builds its sampler there, so the same options give the same prompts and the rollouts one command
    stored are found by the next); a Ray sampler's workers stop when the command ends."""
    from anchors.rollouts.factory import open_sampler

    sampler, template = open_sampler(options)
    if options.ray is not None:
        _OPEN.append(sampler)
    return sampler, template


def build_embedder(name: str, device: str | None, sampler: Any = None) -> Any:
    """The sentence embedder on `device`; with a Ray sampler, its encoding runs on that sampler's workers."""
    from anchors.rollouts.cluster import RaySampler, ray_embedder

    if isinstance(sampler, RaySampler):
        return ray_embedder(sampler, name, device=device)
    from anchors import console
    from anchors.models.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder(name, device=device or "cpu")
    embedder.on_progress = console.CountBar("embedding sentences")
    return embedder


def close_samplers() -> None:
    """Stop the workers of every Ray sampler opened by the command that just ended."""
    while _OPEN:
        _OPEN.pop().close()


def dry_run(sampler: Any, jobs: list[tuple[str, list[Any], Any]], store: Any, note: str | None = None) -> None:
    """The `--dry-run` report of (label, requests, params) jobs against `store` (anchors.rollouts.estimate)."""
    from anchors import console
    from anchors.rollouts.estimate import duration, job_cost, measure_rate

    costs = [job_cost(label, sampler, requests, params, store, _token_counter(sampler)) for label, requests, params in jobs]
    console.table(f"dry run: {sampler.identity}", ["job", "requests", "rollouts", "stored", "to sample",
                                                   "prompt tokens", "new tokens ≤", "new tokens ≈"],
                  [(c.label, c.requests, c.rollouts, c.stored, c.to_sample, "?" if c.prompt_tokens is None else c.prompt_tokens,
                    c.new_tokens_at_most, c.new_tokens_expected if c.mean_stored_tokens is not None else "(none stored)")
                   for c in costs])
    if note:
        console.stdout.print(note, highlight=False)
    left = [(requests, params) for (_, requests, params), cost in zip(jobs, costs) if cost.to_sample]
    if not left:
        console.stdout.print("nothing to sample: the store holds every planned rollout", highlight=False)
        return
    rate = measure_rate(sampler, *left[0])
    if rate.tokens_per_s <= 0:
        console.warn("the probe sampled no tokens: no time estimate")
        return
    expected = sum(c.new_tokens_expected for c in costs) / rate.tokens_per_s
    at_most = sum(c.new_tokens_at_most for c in costs) / rate.tokens_per_s
    console.stdout.print(f"measured: {rate.tokens_per_s:,.1f} new tokens/s ({rate.rollouts} rollouts, {rate.tokens} tokens "
                         f"in {rate.seconds:.1f} s)\nestimated time: {duration(expected)} at the mean length of the "
                         f"rollouts stored (their budget where none are), at most {duration(at_most)}", highlight=False)


def _token_counter(sampler: Any) -> Any:
    """Counts a prompt's tokens when the sampler has its tokenizer here (None: unknown)."""
    handle = getattr(sampler, "handle", None)
    if handle is not None:
        return lambda text: len(handle.encode_text_prompt(text))
    tokenizer = getattr(sampler, "tokenizer", None)
    if tokenizer is not None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return None
