"""Receiver-head ablation on the tiny random models: the hook ablates exactly the heads asked for (checked against
zeroing those heads' columns of the output projection in a second copy of the model), mean ablation with the
heads' own mean output is the identity on a one-position average, random heads stay in the receivers' layers, and
`anchors receivers --ablate` writes through the results contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from anchors.cli import app
from anchors.errors import InputError
from anchors.methods.whitebox.ablation import AblationConfig, head_ablation, random_heads
from anchors.methods.whitebox.patching import forced_sequence
from anchors.metrics.token_kl import full_kl, sequence_logprob
from anchors.models.hooks import hooked
from anchors.results import read_trace_results
from anchors.traces.jsonl import write_jsonl
from devices import load_on_test_device, tolerance

from test_whitebox import make_trace


@pytest.fixture(scope="module", params=["tiny-qwen2", "tiny-llama"])
def handle(request):
    return load_on_test_device(request.param)


def _logits_with_heads_zeroed_in_weights(name: str, trace, heads, answer: str) -> torch.Tensor:
    """The reference: a fresh copy of the model whose output projection ignores the given heads."""
    copy = load_on_test_device(name)  # load_model gives a new copy each call
    config = copy.hf_model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    with torch.no_grad():
        for layer, head in heads:
            o_proj = copy.hf_model.model.layers[layer].self_attn.o_proj
            o_proj.weight[:, head * head_dim:(head + 1) * head_dim] = 0
    runner = hooked(copy)
    sequence = forced_sequence(runner, trace, trace.thinking, {}, copy.encode(answer + "}"), "default")
    run = runner.run(sequence.ids, keep_hidden=True)
    return runner.logits(run.hidden[0, sequence.scored])


def test_zero_ablation_equals_zeroing_the_heads_in_the_output_projection(handle) -> None:
    trace = make_trace(n=6)
    heads = ((1, 2), (1, 0))
    result = head_ablation(handle, [trace], heads, AblationConfig(k=2, draws=1))
    receivers = result.rows[0]
    reference = _logits_with_heads_zeroed_in_weights(handle.name, trace, heads, receivers.answer)
    runner = hooked(handle)
    sequence = forced_sequence(runner, trace, trace.thinking, {}, handle.encode(receivers.answer + "}"), "default")
    clean = runner.logits(runner.run(sequence.ids, keep_hidden=True).hidden[0, sequence.scored])
    expected_kl = float(full_kl(clean[:1], reference[:1])[0])
    expected_p = float(np.exp(sequence_logprob(reference, sequence.targets)))
    # one code path zeroes activations, the other weights: the same numbers up to float32 rounding of the matmuls
    assert receivers.answer_kl == pytest.approx(expected_kl, rel=1e-3, abs=tolerance(1e-6))
    assert receivers.answer_prob_ablated == pytest.approx(expected_p, rel=1e-3, abs=tolerance(1e-7))
    assert receivers.answer_kl > 0  # ablating two heads of a random model does change its answer distribution


def test_mean_ablation_differs_from_zero_and_random_heads_stay_in_their_layers(handle) -> None:
    trace = make_trace(n=6)
    heads = ((1, 1),)
    zero = head_ablation(handle, [trace], heads, AblationConfig(k=1, draws=3, method="zero"))
    mean = head_ablation(handle, [trace], heads, AblationConfig(k=1, draws=3, method="mean"))
    assert zero.rows[0].answer_kl != pytest.approx(mean.rows[0].answer_kl)
    for row in zero.rows[1:]:
        assert row.condition == "random" and [tuple(h) for h in row.heads] != [(1, 1)]
        assert all(layer == 1 for layer, _ in row.heads)
    assert 0.0 <= zero.rows[0].receivers_rank <= 1.0


def test_random_heads_never_pick_a_receiver_and_say_when_a_layer_is_full() -> None:
    rng = np.random.default_rng(0)
    receivers = ((3, 0), (3, 1), (5, 2))
    for _ in range(20):
        drawn = random_heads(receivers, 4, rng)
        assert [layer for layer, _ in drawn] == [3, 3, 5]
        assert not set(drawn) & set(receivers) and len(set(drawn)) == 3
    with pytest.raises(InputError, match="no head left"):
        random_heads(((0, 0), (0, 1)), 3, rng)


def test_receivers_ablate_writes_through_the_contract(tmp_path) -> None:
    traces = [make_trace("a", n=8), make_trace("b", n=7)]
    write_jsonl(tmp_path / "t.jsonl", [t.model_dump(mode="json") for t in traces])
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["receivers", str(tmp_path / "t.jsonl"), "--model", "tiny-qwen2", "--top-k", "2",
                                      "--ablate", "2", "--ablate-draws", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Ablating 2 heads" in result.output
    loaded = read_trace_results(out / "a")
    table = loaded.tables["head_ablation"]
    assert list(table["condition"]) == ["receivers", "random", "random"]
    summary = json.loads((out / "head_ablation_summary.json").read_text())
    assert summary["n_traces"] == 2 and summary["k"] == 2
    assert "head_ablation" in (out / "a" / "report.html").read_text()
