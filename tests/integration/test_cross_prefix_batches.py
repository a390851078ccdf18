"""Batches holding rows of several prefixes of one trace: each row must see exactly its own prompt (masked
prefix positions beyond the part it shares, its own position ids, differing last tokens run first), on the
tiny Qwen2 and the tiny Llama."""

from __future__ import annotations

import pytest
from conformance import strip
from devices import assert_same_greedy_tokens, load_on_test_device, tolerance

from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine

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


@pytest.mark.parametrize("chunk", [1024, 3])
def test_ragged_batch_logits_equal_each_prompt_alone(handle, chunk) -> None:
    """Teacher-forced: a batch of five different prompts (one of them twice), the prefix cache taken from the
    longest, tails run in one forward (or in chunks of 3 tokens), a row dropped halfway, gives every row the
    logits of that row's prompt + continuation run alone through the model without a cache."""
    import torch

    from anchors.models.kvcache import encode_prefix, sharing_prefix
    from anchors.models.rowbatch import RowBatch
    from anchors.rollouts.nesting import common_prefix_length

    prompts = sorted((r.prompt_ids for r in nested_requests(handle, n=1)), key=len, reverse=True)
    prompts.insert(2, prompts[2])
    continuation = handle.encode(" twelve times seven")[:5]
    shared = [min(common_prefix_length(p, prompts[0]), len(p) - 1) for p in prompts]
    rows = list(range(len(prompts)))
    with torch.inference_mode():
        prefix = encode_prefix(handle, prompts[0][:-1])
        with sharing_prefix(handle):
            batch = RowBatch(handle, prefix, shared,
                             [p[s:] for p, s in zip(prompts, shared)], len(continuation) + 1, chunk=chunk)
            got = {j: [logits] for j, logits in enumerate(batch.start().float())}
            for step, token in enumerate(continuation):
                if step == 2:
                    rows.remove(1)
                    batch.keep(torch.tensor([j for j in range(len(prompts)) if j != 1]))
                for j, logits in zip(rows, batch.step(torch.tensor([token] * len(rows))).float()):
                    got[j].append(logits)
        for j, prompt in enumerate(prompts):
            alone = handle.hf_model(input_ids=torch.tensor([list(prompt) + continuation], device=handle.device)).logits
            expected = alone[0, len(prompt) - 1:len(prompt) + len(got[j]) - 1].float()
            torch.testing.assert_close(torch.stack(got[j]), expected, rtol=tolerance(1e-5), atol=tolerance(1e-5))
    assert len(set(shared)) > 2 and batch.mask is not None  # rows really shared different lengths


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


def forced_requests(handle, n: int, seed: int = 1) -> list[PrefixRequest]:
    """Forced-answer prompts of one trace, as `anchors score` makes them: each sentence prefix + the same
    forced-answer suffix, so no prompt lies inside another; they part where the shorter prefix ends."""
    thinking = "Ten sevens are seventy. Two more sevens make fourteen. Seventy and fourteen make eighty-four. "
    ends = [i + 2 for i, c in enumerate(thinking) if c == "."]
    return [PrefixRequest(key=f"f/{i}", prompt_text=handle.template.render_forced_answer("What is 12 * 7?", thinking[:end]),
                          n=n, seed=seed + i) for i, end in enumerate([0, *ends])]


@pytest.mark.parametrize("params", [SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9),
                                    SamplingParams(max_new_tokens=10, temperature=0.0, logprobs=True)],
                         ids=["sampled", "greedy"])
def test_forced_answer_prompts_batched_give_the_tokens_of_one_request_at_a_time(handle, params) -> None:
    """Same seeds, one job vs one job per request: identical tokens. The two runs differ only in float rounding
    (other rows share the matmuls), which can move a token only at a near-tie closer than ~1e-6; on a few
    hundred tokens a difference means a row saw something other than its own prompt."""
    from anchors.rollouts.nesting import nesting_groups

    requests = forced_requests(handle, n=3)
    engine = LocalEngine(handle, batch_size=5)
    assert len(nesting_groups([handle.encode(r.prompt_text) for r in requests], engine.max_tail)) == 1
    together = run(engine, requests, params)
    for request in requests:
        alone = run(engine, [request], params)[request.key]
        assert [r.token_ids for r in together[request.key]] == [r.token_ids for r in alone]
        if params.logprobs:
            for got, expected in zip(together[request.key], alone):
                assert got.logprobs == pytest.approx(expected.logprobs, abs=tolerance(1e-5))
