"""White-box methods on the tiny random Qwen2 / Llama models: streaming = naive, KV reuse = recompute, patching
identities, parity with plain Hugging Face, and clear errors on bad input. On ANCHORS_TEST_DEVICE (default CPU;
see tests/integration/devices.py). The `*_table` tests build pandas frames, kept apart so a machine without pandas
can deselect them (`-k "not table"`) and still run every numerical check."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import anchors.methods.sequence as sequence_module
from anchors.errors import InputError
from anchors.methods.patching import PatchingConfig, activation_patching
from anchors.methods.receivers import (
    ReceiverConfig,
    naive_sentence_attention,
    receiver_heads,
    sentence_attention,
)
from anchors.methods.sequence import encode_trace
from anchors.methods.suppression import SuppressionConfig, suppression_matrix
from anchors.models import build_tiny_model, load_model
from anchors.models.hooks import Hook, UnsupportedModelError, hooked
from anchors.traces.records import Trace
from anchors.traces.segment import Sentence, split_sentences
from devices import ON_CPU, load_on_test_device, tolerance

TINY = ["tiny-qwen2", "tiny-llama"]


def make_trace(trace_id: str = "t1", n: int = 10, filler: str = "") -> Trace:
    steps = " ".join(f"Step {i}: I add {i} and {i + 3} to get {2 * i + 3}.{filler}" for i in range(n))
    return Trace(id=trace_id, problem="What is 40 + 2?", thinking=steps + "\nSo the answer is 42.\n",
                 answer_text="\n\nThe answer is \\boxed{42}.")


@pytest.fixture(scope="module", params=TINY)
def handle(request):
    return load_on_test_device(request.param)


@pytest.fixture(scope="module")
def trace() -> Trace:
    return make_trace()


# --- sentence attention and receiver heads ---------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 7])
def test_streaming_sentence_attention_equals_naive(handle, trace, chunk):
    streamed = sentence_attention(handle, trace, query_chunk=chunk)
    naive = naive_sentence_attention(handle, trace)
    n = len(split_sentences(trace.thinking))
    assert streamed.matrix.shape == (2, 4, n, n)
    assert np.abs(streamed.matrix - naive.matrix).max() < tolerance(1e-5)
    # causal: no attention to later sentences; exact on any machine (masked scores underflow to 0 in exp)
    assert np.all(np.triu(streamed.matrix, k=1) == 0)
    assert streamed.matrix[:, :, np.arange(n), np.arange(n)].min() > 0


def test_hooks_are_gone_after_a_run_even_after_an_error(handle, trace):
    runner = hooked(handle)
    ids = torch.tensor([encode_trace(trace, handle).input_ids], device=handle.device)
    with torch.no_grad():
        before = handle.hf_model(ids).logits

    def explode(_layer, _offset, _act):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runner.run(ids, hooks=[Hook("attn_scores", [0], explode)])
    sentence_attention(handle, trace)
    assert not any(point.fwd_hooks for point in runner.bridge.hook_dict.values())
    with torch.no_grad():
        assert torch.equal(handle.hf_model(ids).logits, before)  # same input, process and kernels: bit for bit


def test_receiver_heads_rank_heads_and_score_sentences(handle):
    traces = [make_trace("a", 10), make_trace("b", 12), make_trace("c", 9, filler=" Hmm.")]
    result = receiver_heads(handle, traces, ReceiverConfig(top_k=3))
    assert len(result.heads) == 3 and all(layer == 1 for layer, _ in result.heads)  # layer 0 left out
    best = [result.mean_kurtosis[head] for head in result.heads]
    assert best == sorted(best, reverse=True)
    assert result.kurtosis.shape == (3, 2, 4) and result.reliability is not None
    first = result.traces[0]
    picked = np.stack([first.vertical[head] for head in result.heads])
    assert np.allclose(first.scores[:-4], picked[:, :-4].mean(axis=0))
    assert np.isnan(first.scores[-4:]).all() and not np.isnan(first.scores[:-4]).any()
    assert first.receiver_attention.shape == (3, len(first.sentences), len(first.sentences))
    assert receiver_heads(handle, traces[:1]).reliability is None  # one trace: not computed
    with_layer0 = receiver_heads(handle, traces, ReceiverConfig(top_k=8, exclude_layers=()))
    assert {layer for layer, _ in with_layer0.heads} == {0, 1}


def test_receiver_heads_table(handle):
    result = receiver_heads(handle, [make_trace("a", 4), make_trace("b", 5)], ReceiverConfig(top_k=2))
    frame = result.to_pandas()
    assert len(frame) == sum(len(t.sentences) for t in result.traces) and set(frame["trace_id"]) == {"a", "b"}


# --- attention suppression ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 16])
def test_kv_reuse_equals_a_full_recompute(handle, trace, chunk):
    config = SuppressionConfig(sources=(0, 4, 9, 10), query_chunk=chunk)
    reused = suppression_matrix(handle, trace, config)
    naive = suppression_matrix(handle, trace, replace(config, reuse_kv=False))
    computed = list(config.sources)
    assert np.abs(reused.raw[:, computed] - naive.raw[:, computed]).max() < tolerance(1e-4)
    assert np.abs(reused.answer[computed] - naive.answer[computed]).max() < tolerance(1e-4)
    assert np.isnan(reused.raw[:, 1]).all()  # not asked for: NaN
    for s in computed:  # targets before the source cannot change: KL exactly 0
        assert np.allclose(reused.raw[:s, s], np.log(1e-9), rtol=0, atol=1e-12)
        assert np.all(reused.raw[s:, s] > np.log(1e-9) + 1e-3)


def test_suppression_masks_exactly_the_chosen_keys(handle, trace):
    runner = hooked(handle)
    sequence = encode_trace(trace, handle)
    a, b = sequence.spans[3]
    seen = {}
    from anchors.methods.suppression import _key_mask

    hooks = [Hook("attn_scores", [1], _key_mask((a, b), heads=(2,))),
             Hook("pattern", [0, 1], lambda layer, _o, p: seen.__setitem__(layer, p.clone()))]
    runner.run(torch.tensor([sequence.input_ids], device=handle.device), hooks=hooks)
    assert torch.all(seen[1][0, 2, :, a:b] == 0)  # layer 1, head 2: no attention to sentence 3 (exp underflows to 0)
    assert seen[1][0, 1, b:, a:b].sum() > 0 and seen[0][0, 2, b:, a:b].sum() > 0  # other heads and layers untouched
    nothing = suppression_matrix(handle, trace, SuppressionConfig(sources=(3,), layers=()))
    assert np.allclose(nothing.raw[:, 3], np.log(1e-9), rtol=0, atol=1e-12)  # masking no layer changes nothing


def test_suppression_result_shapes_and_normalisation(handle, trace):
    result = suppression_matrix(handle, trace, SuppressionConfig(sources=(0, 1, 2)))
    n = len(result.sentences)
    assert result.raw.shape == result.normalised.shape == (n, n) and result.answer.shape == (n,)
    assert np.isnan(result.normalised[0]).all() and np.isnan(np.diag(result.normalised)).all()
    assert result.answer_span[1] == len(encode_trace(trace, handle).input_ids)


def test_suppression_table(handle, trace):
    result = suppression_matrix(handle, trace, SuppressionConfig(sources=(0, 1)))
    assert set(result.to_pandas().columns) >= {"target", "source", "raw", "normalised"}


# --- activation patching --------------------------------------------------------------------------


def test_patching_identities(handle, trace):
    sentences = split_sentences(trace.thinking)
    same_length = sentences[2].text.replace("7.", "8.")  # one digit changed: as many tokens
    assert len(handle.encode(same_length)) == len(handle.encode(sentences[2].text))
    replacements = {2: same_length, 4: sentences[4].text, 6: "Hmm, wait, let me redo this sum from the start."}
    result = activation_patching(handle, trace, replacements, PatchingConfig(sites=("resid", "attn", "mlp")))
    resid, attn, mlp = 0, 1, 2
    # Patching every position of the sentence at the embeddings is the counterfactual run itself (bit for bit on
    # CPU; on CUDA the two runs may pick different kernels: H100 fp32 gave a relative difference of 2e-6).
    assert result.kl[resid, 0, 2] == pytest.approx(result.total_kl[2], rel=1e-6 if ON_CPU else 1e-4, abs=1e-12)
    assert result.logprob_delta[resid, 0, 2] == pytest.approx(result.total_logprob_delta[2], abs=1e-6)
    assert result.total_kl[2] > 0
    # The same text changes nothing anywhere, and the last layer's attention/MLP outputs at the sentence reach
    # later tokens through nothing: both are exact zeros in real arithmetic. In floats the patched runs are batched
    # over layers (another matmul shape than the clean run), so the two forward passes may round differently: seen
    # 0 on Intel, 4.5e-16 / 5.3e-16 nats on AMD EPYC (OpenBLAS Haswell kernels), 2.9e-16 on an H100. A real effect
    # of patching a changed sentence is ~2e-6 nats on these models (total_kl[2] above), so 1e-12 separates the two.
    # ln p(answer) is a float32 value of magnitude ~1-10 rounded at ~1e-7 relative: 1.4e-8 seen on AMD, where a real
    # change of one digit moves it by 8e-4 to 6e-3 (total_logprob_delta[2]): 1e-6 separates the two.
    assert np.allclose(result.kl[:, :, 4], 0, rtol=0, atol=1e-12)
    assert np.allclose(result.logprob_delta[:, :, 4], 0, rtol=0, atol=1e-6)
    unreachable = result.kl[[attn, mlp], 1][:, [2, 6]]
    assert np.allclose(unreachable, 0, rtol=0, atol=1e-12)
    assert result.patched_tokens[6] == min(len(handle.encode(replacements[6])), len(handle.encode(sentences[6].text)))
    assert np.isnan(result.kl[:, :, 0]).all() and result.replacements[0] is None
    assert result.answer == "42"


def test_patching_table(handle, trace):
    replacements = {2: "Hmm, let me redo this.", 6: "Wait."}
    result = activation_patching(handle, trace, replacements, PatchingConfig(sites=("resid", "attn", "mlp")))
    assert len(result.to_pandas()) == 3 * 2 * len(replacements)


def test_patching_alignment_and_errors(handle, trace):
    start = activation_patching(handle, trace, {6: "Hmm."}, PatchingConfig(align="start", layers=(1,)))
    end = activation_patching(handle, trace, {6: "Hmm."}, PatchingConfig(align="end", layers=(1,)))
    assert start.kl[0, 1, 6] != end.kl[0, 1, 6] and np.isnan(start.kl[0, 0, 6])
    with pytest.raises(InputError, match="'t1': sentence 99 does not exist"):
        activation_patching(handle, trace, {99: "x"})
    no_answer = trace.model_copy(update={"answer_text": "I am not sure."})
    with pytest.raises(InputError, match="'t1': no final answer"):
        activation_patching(handle, no_answer, {1: "Other."})
    assert activation_patching(handle, no_answer, {1: "Other."}, PatchingConfig(answer="42", layers=(0,))).answer == "42"


# --- parity ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY)
def test_chunked_hooked_logits_equal_plain_hugging_face(name, trace):
    fresh = load_on_test_device(name)  # untouched: logits before any bridge exists
    ids = torch.tensor([encode_trace(trace, fresh).input_ids], device=fresh.device)
    with torch.no_grad():
        reference = fresh.hf_model(ids).logits
    runner = hooked(fresh)
    out = runner.run(ids, query_chunk=13, keep_hidden=True)
    difference = (runner.logits(out.hidden) - reference).abs().max().item()
    print(f"\n{name}: max |chunked bridge - plain HF eager| logits = {difference:.3g}")
    assert difference < tolerance(1e-4)


# --- bad input -------------------------------------------------------------------------------------


def test_a_trace_longer_than_the_context_is_refused_by_name(handle):
    long = make_trace("too-long", n=150)
    with pytest.raises(InputError, match=r"trace 'too-long': .* longer than the model's context of 2048 tokens \(sentence \d+ is the first"):
        sentence_attention(handle, long)
    with pytest.raises(InputError, match="trace 'too-long': the whole trace is"):
        suppression_matrix(handle, long)
    with pytest.raises(InputError, match="trace 'too-long': the forced-answer sequence"):
        activation_patching(handle, long, {0: "Other."})


def test_a_sentence_without_tokens_is_named(handle, trace, monkeypatch):
    real = split_sentences(trace.thinking)
    gap = real[1].end  # the space between sentences 1 and 2 made into a "sentence"
    broken = [*real[:2], Sentence(2, " ", gap, gap + 1, ""), *real[2:]]
    monkeypatch.setattr(sequence_module, "split_sentences", lambda text, mode="default": broken)
    with pytest.raises(InputError, match="trace 't1': sentence 2 .*zero tokens"):
        sentence_attention(handle, trace)


def test_an_architecture_the_bridge_cannot_wrap_is_refused(tmp_path):
    import transformers

    folder = tmp_path / "tiny-biogpt"
    folder.mkdir()
    for file in build_tiny_model("tiny-qwen2").glob("tokenizer*"):
        shutil.copy(file, folder / file.name)
    config = transformers.BioGptConfig(vocab_size=1100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32, max_position_embeddings=128)
    transformers.BioGptForCausalLM(config).save_pretrained(folder)
    model = load_model(Path(folder), device="cpu")
    with pytest.raises(UnsupportedModelError, match="BioGptForCausalLM .*TransformerLens cannot wrap"):
        sentence_attention(model, make_trace())
