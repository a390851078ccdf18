"""The local shared-prefix engine on the tiny random Qwen2 (and the bundled SmolLM2 where a real model matters)."""

from __future__ import annotations

import dataclasses

import pytest

from anchors.errors import InputError
from anchors.models import load_model
from anchors.rollouts.reference import sample
from anchors.rollouts.base import PrefixRequest, SamplingParams
from anchors.rollouts.factory import make_sampler
from anchors.rollouts.jobs import collect_rollouts
from anchors.rollouts.local import LocalEngine
from conformance import check_boxed_stop, check_contract, check_stop_string, strip
from devices import TEST_DEVICE, TEST_DTYPE, assert_same_greedy_tokens, cpu_only, load_on_test_device, tolerance


@pytest.fixture(scope="module")
def tiny():
    return load_on_test_device("tiny-qwen2")


def nested_requests(handle, n: int = 5, seed: int = 1) -> list[PrefixRequest]:
    """Three prefixes of one trace, as resampling asks for them: each inside the next."""
    ids = handle.encode_prompt("What is 2+2?", "First, add two and two. That makes four. So the answer")
    cuts = [len(ids) - 12, len(ids) - 6, len(ids)]
    return [PrefixRequest(key=f"t/{i}", prompt_text=handle.decode(ids[:cut]), prompt_ids=tuple(ids[:cut]), n=n,
                          seed=seed + i) for i, cut in enumerate(cuts)]


def run(engine, requests, params):
    return collect_rollouts(engine, requests, params, progress=False)


def test_conformance(tiny) -> None:
    prompts = [tiny.template.render("What is 2+2?", "First"), tiny.template.render("What is 3+5?")]
    check_contract(LocalEngine(tiny, batch_size=2), prompts)
    got = check_stop_string(LocalEngine(tiny), prompts[0], stop="e")
    assert any(r.finish_reason == "stop" for r in got)


@pytest.mark.skipif(TEST_DTYPE not in ("float32", "fp32"), reason="exact greedy agreement is an fp32 property: in "
                    "bf16 the engine's and generate's attention paths round differently (H100: near-ties flip)")
def test_greedy_matches_hugging_face_generate(tiny) -> None:
    requests = nested_requests(tiny, n=3)
    engine = LocalEngine(tiny, batch_size=2)
    out = run(engine, requests, SamplingParams(max_new_tokens=16, temperature=0.0))
    assert tiny.hf_model.config._attn_implementation == "eager"  # restored for white-box use
    for request in requests:
        reference = sample(tiny, list(request.prompt_ids), max_new_tokens=16, temperature=0.0, seed=0)[0]
        for rollout in out[request.key]:
            assert_same_greedy_tokens(tiny, request.prompt_ids, rollout.token_ids, reference.token_ids)


def test_rollouts_do_not_depend_on_batch_layout_or_prefix_sharing(tiny) -> None:
    params = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9)
    requests = nested_requests(tiny)
    shared = run(LocalEngine(tiny, batch_size=4), requests, params)
    alone = run(LocalEngine(tiny, batch_size=1, share_nested=False), requests, params)
    assert {k: strip(v) for k, v in shared.items()} == {k: strip(v) for k, v in alone.items()}
    texts = [r.text for v in shared.values() for r in v]
    assert len(set(texts)) == len(texts)  # every row sampled with its own randomness
    reseeded = run(LocalEngine(tiny, batch_size=4), nested_requests(tiny, seed=2), params)
    assert strip(reseeded["t/0"]) != strip(shared["t/1"]) and [r.text for r in reseeded["t/0"]] != [r.text for r in shared["t/0"]]


def test_sliced_prefix_cache_equals_a_fresh_encoding(tiny) -> None:
    import torch

    from anchors.models.kvcache import SharedPrefixCache, encode_prefix, sharing_prefix

    long_ids = tuple(nested_requests(tiny)[2].prompt_ids)
    short = long_ids[:-6]
    last = torch.tensor([[long_ids[len(short)]]] * 2, device=tiny.device)
    with torch.inference_mode():
        prefixes = (encode_prefix(tiny, long_ids, chunk=7), encode_prefix(tiny, short))
    with torch.inference_mode(), sharing_prefix(tiny):
        logits = []
        for prefix in prefixes:
            cache = SharedPrefixCache(tiny, prefix, len(short), 2, 4)
            position = torch.full((2, 1), len(short), device=tiny.device)
            logits.append(tiny.hf_model(input_ids=last, position_ids=position, **cache.forward_inputs()).logits)
    torch.testing.assert_close(logits[0], logits[1], rtol=tolerance(1e-5), atol=tolerance(1e-5))


def test_finish_reasons_eos_stop_and_length(tiny) -> None:
    request = nested_requests(tiny, n=2)[0]
    greedy = SamplingParams(max_new_tokens=10, temperature=0.0)
    base = run(LocalEngine(tiny), [request], greedy)["t/0"][0]
    assert base.finish_reason == "length" and base.completion_tokens == 10
    # Make the 4th greedy token an end token: the rollout ends before it, which is not in the text.
    eos_handle = dataclasses.replace(tiny)
    eos_handle.__dict__["eos_token_ids"] = frozenset({base.token_ids[3]}) - set(base.token_ids[:3])
    ended = run(LocalEngine(eos_handle), [request], greedy)["t/0"][0]
    assert ended.finish_reason == "eos" and ended.token_ids == base.token_ids[:3]
    assert ended.text == tiny.decode(base.token_ids[:3])
    stop = base.text[len(tiny.decode(base.token_ids[:5])):][:2]
    stopped = run(LocalEngine(tiny), [request], dataclasses.replace(greedy, stop=(stop,)))["t/0"][0]
    assert stopped.finish_reason == "stop" and stopped.text == base.text[:base.text.index(stop) + len(stop)]
    assert tiny.decode(stopped.token_ids).startswith(stopped.text) and len(stopped.token_ids) <= 7


def test_logprobs_are_of_the_chosen_tokens(tiny) -> None:
    import torch

    request = nested_requests(tiny, n=1)[0]
    got = run(LocalEngine(tiny), [request], SamplingParams(max_new_tokens=4, logprobs=True))["t/0"][0]
    ids = torch.tensor([list(request.prompt_ids) + got.token_ids[:1]], device=tiny.device)
    with torch.inference_mode():
        logits = tiny.hf_model(input_ids=ids).logits[0, -2]
    assert got.logprobs is not None and len(got.logprobs) == len(got.token_ids)
    expected = float(torch.log_softmax(logits.float(), -1)[got.token_ids[0]])
    assert got.logprobs[0] == pytest.approx(expected, abs=tolerance(1e-4))


def test_prompt_longer_than_the_context_is_a_clear_error(tiny) -> None:
    too_long = PrefixRequest(key="t/long", prompt_text="x", prompt_ids=(5,) * tiny.context_length, n=2, seed=0)
    with pytest.raises(InputError, match=r"'t/long'.*2048 tokens.*at most 2048"):
        run(LocalEngine(tiny), [too_long], SamplingParams(max_new_tokens=4))


def test_bf16_runs_and_is_deterministic() -> None:
    engine = make_sampler("tiny-qwen2", device=TEST_DEVICE, dtype="bfloat16", batch_size=3)
    assert engine.identity.endswith(f":bfloat16:{engine.handle.device.type}")
    params = SamplingParams(max_new_tokens=8)
    first = run(engine, nested_requests(engine.handle, n=4), params)
    second = run(engine, nested_requests(engine.handle, n=4), params)
    assert {k: strip(v) for k, v in first.items()} == {k: strip(v) for k, v in second.items()}


@pytest.mark.slow
@cpu_only  # the bundled SmolLM2 is not carried to GPU machines
def test_conformance_and_boxed_stop_on_the_bundled_model() -> None:
    handle = load_model("smollm2-135m", device="cpu")
    engine = LocalEngine(handle, batch_size=4)
    prompts = [handle.template.render("What is 2+2?", "First"), handle.template.render("Name a prime.")]
    check_contract(engine, prompts, max_new_tokens=8)
    forced = handle.template.render_forced_answer("What is 2+2?", "2+2 is 4.")
    check_boxed_stop(engine, forced)


def test_a_model_wrapped_by_the_bridge_is_refused() -> None:
    """Issue found in a bundled-model run: after a white-box method booted the TransformerLens bridge on the
    model, plain forwards kept their logits but the engine's rollouts were garbage (the bridge's attention
    bypasses the engine's). The engine must refuse such a model instead of sampling from it."""
    handle = load_on_test_device("tiny-qwen2")  # its own handle: the module's `tiny` stays unwrapped
    engine = LocalEngine(handle)
    requests = nested_requests(handle, n=1)
    assert run(engine, requests, SamplingParams(max_new_tokens=2))  # samples before the bridge boots
    handle.bridge()
    with pytest.raises(RuntimeError, match="wrapped by the TransformerLens bridge"):
        run(engine, requests, SamplingParams(max_new_tokens=2))
