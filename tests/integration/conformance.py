"""What every Sampler must do, checked the same way for the local engine and the server backend."""

from __future__ import annotations

from anchors.rollouts.base import PrefixRequest, Rollout, Sampler, SamplingParams, rollout_seed
from anchors.rollouts.jobs import collect_rollouts


def strip(rollouts: list[Rollout]) -> list[Rollout]:
    """Rollouts without their timing (provenance, not part of the result)."""
    return [r.model_copy(update={"elapsed_s": None}) for r in rollouts]


def check_contract(sampler: Sampler, prompts: list[str], *, max_new_tokens: int = 12,
                   exact: bool = True) -> dict[str, list[Rollout]]:
    """Shape, seeds, budget, determinism and index subsets; returns the first run's rollouts.

    `exact=False` for servers: their numerics depend on their own batching and prompt-cache history (a
    llama.cpp server re-evaluates a different part of a prompt depending on the call before), so a repeated
    or resumed rollout is a fresh sample of the same distribution rather than the same bits."""
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95)
    requests = [PrefixRequest(key=f"trace/{i}", prompt_text=p, n=3, seed=11 + i) for i, p in enumerate(prompts)]
    first = collect_rollouts(sampler, requests, params, progress=False)
    assert list(first) == [r.key for r in requests]
    for request in requests:
        got = first[request.key]
        assert [r.index for r in got] == [0, 1, 2]
        assert all(r.key == request.key and r.seed == rollout_seed(request.seed, r.index) for r in got)
        assert all(r.ok and r.finish_reason in ("eos", "stop", "length") for r in got)
        assert all(r.completion_tokens <= max_new_tokens for r in got)
        assert all(r.completion_tokens == max_new_tokens for r in got if r.finish_reason == "length")
    again = collect_rollouts(sampler, requests, params, progress=False)
    subset = [PrefixRequest(key=r.key, prompt_text=r.prompt_text, n=3, seed=r.seed, indices=(2,)) for r in requests]
    picked = collect_rollouts(sampler, subset, params, progress=False)
    if exact:
        assert {k: strip(v) for k, v in again.items()} == {k: strip(v) for k, v in first.items()}
        assert {k: strip(v) for k, v in picked.items()} == {k: strip(v[2:]) for k, v in first.items()}
    else:
        assert {k: [(r.index, r.seed) for r in v] for k, v in again.items()} == \
            {k: [(r.index, r.seed) for r in v] for k, v in first.items()}
        assert {k: [(r.index, r.seed) for r in v] for k, v in picked.items()} == \
            {k: [(r.index, r.seed) for r in v[2:]] for k, v in first.items()}
    return first


def check_stop_string(sampler: Sampler, prompt: str, stop: str, max_new_tokens: int = 24) -> list[Rollout]:
    """A stop string ends the text (kept at its end, as the local engine writes it) and nothing follows it."""
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.9, top_p=1.0, stop=(stop,))
    request = PrefixRequest(key="trace/stop", prompt_text=prompt, n=6, seed=3)
    got = collect_rollouts(sampler, [request], params, progress=False)["trace/stop"]
    for rollout in got:
        assert stop not in rollout.text[:-len(stop)] if rollout.text.endswith(stop) else stop not in rollout.text
        if rollout.finish_reason == "stop":
            assert rollout.text.endswith(stop)
    return got


def check_boxed_stop(sampler: Sampler, forced_prompt: str) -> list[Rollout]:
    """On a prompt that opened the boxed answer, a rollout that closes the brace ends right there."""
    params = SamplingParams(max_new_tokens=32, temperature=0.6, top_p=0.95)
    request = PrefixRequest(key="trace/boxed", prompt_text=forced_prompt, n=4, seed=5)
    got = collect_rollouts(sampler, [request], params, progress=False)["trace/boxed"]
    stopped = [r for r in got if r.finish_reason == "stop"]
    assert stopped, [r.text for r in got]
    assert all(r.text.endswith("}") and r.text.count("}") - r.text.count("{") == 1 for r in stopped)
    return got
