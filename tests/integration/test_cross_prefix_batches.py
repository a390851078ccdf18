"""Batches holding rows of several prefixes of one trace: each row must see exactly its own prompt (masked
cache positions beyond the part it shares, its own position ids, differing last tokens fed first), on the
tiny Qwen2 and the tiny Llama."""

from __future__ import annotations

import pytest
from conformance import strip
from devices import assert_same_greedy_tokens, load_on_test_device, tolerance

from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine, _RaggedRows

MODELS = ["tiny-qwen2", "tiny-llama"]


@pytest.fixture(scope="module", params=MODELS)
def handle(request):
    return load_on_test_device(request.param)


def nested_requests(handle, n: int, seed: int = 1) -> list[PrefixRequest]:
    """Four prefixes of one trace, shortest first (as scoring asks for them), each inside the next; and one
    whose last three tokens differ from the longest one's (as a text prefix ending in a space tokenizes)."""
    ids = handle.encode_prompt("What is 12 * 7?", "Ten sevens are seventy, two more make fourteen, so the sum is")
    prompts = [tuple(ids[:cut]) for cut in (len(ids) - 17, len(ids) - 9, len(ids) - 4, len(ids))]
    prompts.insert(3, tuple(ids[:-5]) + tuple(handle.encode(" eighty-four"))[:3])
    assert all(prompts[-1][:len(p)] != p for p in prompts[3:4])
    return [PrefixRequest(key=f"t/{i}", prompt_text=handle.decode(list(p)), prompt_ids=p, n=n, seed=seed + i)
            for i, p in enumerate(prompts)]


def run(engine, requests, params):
    return collect_rollouts(engine, requests, params, progress=False)


@pytest.mark.parametrize("attention", ["sdpa", None])
def test_ragged_batch_logits_equal_each_prompt_alone(handle, attention) -> None:
    """Teacher-forced: a batch of four different prompts, cache sliced from the longest, gives every row the
    logits of that row's prompt + continuation run alone through the model without a cache."""
    import torch

    from anchors.models.kvcache import encode_prefix, fast_attention, repeated_cache

    prompts = [r.prompt_ids for r in nested_requests(handle, n=1) if r.key != "t/3"][::-1]  # longest first
    continuation = handle.encode(" twelve times seven")[:5]
    lengths = [len(p) for p in prompts]
    ragged = _RaggedRows.of([length - 1 for length in lengths], len(continuation) + 1, handle.device)
    with torch.inference_mode(), fast_attention(handle, attention):
        cache = repeated_cache(handle, encode_prefix(handle, prompts[0][:-1]), lengths[0] - 1, len(prompts),
                               lengths[0] + len(continuation) + 1)
        fed = [[p[-1]] + continuation for p in prompts]
        batched = []
        for step in range(len(fed[0])):
            inputs = torch.tensor([[row[step]] for row in fed], device=handle.device)
            out = handle.hf_model(input_ids=inputs, past_key_values=cache, use_cache=True, **ragged.model_inputs(step))
            batched.append(out.logits[:, -1].float())
        for j, prompt in enumerate(prompts):
            alone = handle.hf_model(input_ids=torch.tensor([list(prompt) + continuation], device=handle.device)).logits
            expected = alone[0, len(prompt) - 1:].float()
            got = torch.stack([logits[j] for logits in batched])
            torch.testing.assert_close(got, expected, rtol=tolerance(1e-5), atol=tolerance(1e-5))
    assert ragged.mask is not None and not ragged.mask[1:, lengths[1] - 1:lengths[0] - 1].any()


def test_cross_prefix_greedy_rollouts_equal_each_prefix_alone(handle) -> None:
    requests = nested_requests(handle, n=3)
    params = SamplingParams(max_new_tokens=12, temperature=0.0, logprobs=True)
    mixed = run(LocalEngine(handle, batch_size=5), requests, params)  # units: 5 rows over 2-3 prompts each
    for request in requests:
        alone = run(LocalEngine(handle, batch_size=3), [request], params)[request.key]
        assert [r.prompt_tokens for r in mixed[request.key]] == [len(request.prompt_ids)] * 3
        for got, expected in zip(mixed[request.key], alone):
            assert_same_greedy_tokens(handle, request.prompt_ids, got.token_ids, expected.token_ids)
            if got.token_ids == expected.token_ids:
                assert got.text == expected.text
                assert got.logprobs == pytest.approx(expected.logprobs, abs=tolerance(1e-5))


def test_cross_prefix_sampling_is_reproducible_and_resumable(handle) -> None:
    params = SamplingParams(max_new_tokens=12, temperature=1.0, top_p=0.9)
    engine = LocalEngine(handle, batch_size=5)
    first = run(engine, nested_requests(handle, n=3), params)
    again = run(engine, nested_requests(handle, n=3), params)
    assert {k: strip(v) for k, v in again.items()} == {k: strip(v) for k, v in first.items()}
    # A resumed job asks for a few indices only; its units are still cut from the full ranges, so the rows
    # come out of the same batches, bit for bit.
    resumed = [PrefixRequest(key=r.key, prompt_text=r.prompt_text, prompt_ids=r.prompt_ids, n=r.n, seed=r.seed,
                             indices=(r.n - 1,)) for r in nested_requests(handle, n=3)]
    picked = run(engine, resumed, params)
    assert {k: strip(v) for k, v in picked.items()} == {k: strip(v[-1:]) for k, v in first.items()}
    texts = [r.text for v in first.values() for r in v]
    assert len(set(texts)) == len(texts)  # every row sampled with its own randomness
