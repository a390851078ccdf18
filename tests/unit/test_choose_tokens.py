"""The engine's token draw: temperature + top-p by inverse CDF, one uniform per row."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from anchors.rollouts.base import SamplingParams  # noqa: E402
from anchors.rollouts.local import NUCLEUS_CANDIDATES, choose_tokens  # noqa: E402


def draw(logits, params, draws: int = 20000, seed: int = 0):
    uniforms = torch.rand(draws, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    chosen, _ = choose_tokens(logits.expand(draws, -1), params, uniforms)
    return torch.bincount(chosen, minlength=logits.shape[-1]).double() / draws


def nucleus_probs(logits, temperature, top_p):
    probs = torch.softmax(logits / temperature, dim=-1)
    ordered, order = probs.sort(descending=True)
    keep = (ordered.cumsum(-1) - ordered) < top_p
    target = torch.zeros_like(probs)
    target[order[keep]] = ordered[keep]
    return target / target.sum()


@pytest.mark.parametrize("width", [40, NUCLEUS_CANDIDATES + 300])
@pytest.mark.parametrize(("temperature", "top_p"), [(0.6, 0.95), (1.0, 0.7), (1.3, 1.0)])
def test_frequencies_match_the_nucleus_distribution(width, temperature, top_p) -> None:
    # width > NUCLEUS_CANDIDATES with flat logits exercises the full-sort path, narrow ones the top-k path
    logits = torch.randn(width, generator=torch.Generator().manual_seed(width)) * (2.0 if width < 100 else 0.1)
    target = nucleus_probs(logits, temperature, top_p)
    seen = draw(logits, SamplingParams(temperature=temperature, top_p=top_p))
    # L1 distance against what sampling noise alone gives (E|freq - p| = sqrt(2 p (1 - p) / (pi N)))
    noise = float(torch.sqrt(2 * target * (1 - target) / (torch.pi * 20000)).sum())
    assert float((seen - target).abs().sum()) < 1.3 * noise + 0.005
    assert float(seen[target == 0].sum()) == 0.0  # never a token outside the nucleus


def test_greedy_and_row_independence() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    chosen, _ = choose_tokens(logits, SamplingParams(temperature=0.0), torch.rand(4, dtype=torch.float64))
    assert chosen.tolist() == logits.argmax(-1).tolist()
    uniforms = torch.rand(4, dtype=torch.float64)
    together, _ = choose_tokens(logits, SamplingParams(), uniforms)
    alone = [int(choose_tokens(logits[i:i + 1], SamplingParams(), uniforms[i:i + 1])[0]) for i in range(4)]
    assert together.tolist() == alone


def test_logprobs_are_raw_log_softmax() -> None:
    logits = torch.randn(3, 20, generator=torch.Generator().manual_seed(2))
    chosen, logprobs = choose_tokens(logits, SamplingParams(), torch.rand(3, dtype=torch.float64), True)
    expected = torch.log_softmax(logits, -1).gather(-1, chosen.view(-1, 1)).view(-1)
    torch.testing.assert_close(logprobs, expected)
