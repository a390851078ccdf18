"""White-box equalities on the bundled SmolLM2-135M (a real model: 30 layers, 9 query / 3 KV heads)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from anchors.methods.whitebox.receivers import naive_sentence_attention, sentence_attention
from anchors.methods.whitebox.sequence import encode_trace
from anchors.methods.whitebox.suppression import SuppressionConfig, suppression_matrix
from anchors.models import load_model
from anchors.models.bundled import BUNDLED_MODELS, bundled_gguf_path
from anchors.models.hooks import hooked
from anchors.traces.jsonl import read_traces
from anchors.traces.segment import split_sentences

SMOLLM2 = BUNDLED_MODELS["smollm2-135m"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bundled_gguf_path(SMOLLM2) is None, reason=f"needs {SMOLLM2.install_hint}"),
]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "whitebox_trace_written.jsonl"


@pytest.fixture(scope="module")
def trace():
    """The example trace cut to its first 12 sentences (keeps the slow tests short)."""
    full = next(iter(read_traces(EXAMPLE)))
    end = split_sentences(full.thinking)[11].end
    return full.model_copy(update={"thinking": full.thinking[:end] + "\n"})


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m", device="cpu")


def test_hooked_chunked_logits_equal_plain_hugging_face(trace, record_property):
    fresh = load_model("smollm2-135m", device="cpu")  # no bridge yet: the plain HF eager reference
    ids = torch.tensor([encode_trace(trace, fresh).input_ids])
    with torch.no_grad():
        reference = fresh.hf_model(ids).logits
    runner = hooked(fresh)
    out = runner.run(ids, query_chunk=64, keep_hidden=True)
    difference = (runner.logits(out.hidden) - reference).abs().max().item()
    record_property("chunked_bridge_max_abs_diff", difference)
    print(f"\nSmolLM2: max |chunked bridge - plain HF eager| logits = {difference:.3g}")
    assert difference < 1e-4


def test_streaming_attention_equals_naive(smollm2, trace):
    streamed = sentence_attention(smollm2, trace, query_chunk=50)
    naive = naive_sentence_attention(smollm2, trace)
    assert streamed.matrix.shape == (30, 9, 12, 12)
    assert np.abs(streamed.matrix - naive.matrix).max() < 1e-5


def test_kv_reuse_suppression_equals_recompute(smollm2, trace):
    config = SuppressionConfig(sources=(0, 6, 11))
    reused = suppression_matrix(smollm2, trace, config)
    naive = suppression_matrix(smollm2, trace, replace(config, reuse_kv=False))
    assert np.abs(reused.raw[:, [0, 6, 11]] - naive.raw[:, [0, 6, 11]]).max() < 1e-4
    assert np.abs(reused.answer[[0, 6, 11]] - naive.answer[[0, 6, 11]]).max() < 1e-4
    # a real model notices: hiding a sentence moves the next sentences' predictions well above the floor
    assert reused.raw[1, 0] > np.log(1e-9) + 5
