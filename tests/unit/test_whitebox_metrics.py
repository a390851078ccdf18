"""anchors.metrics.attention and anchors.metrics.token_kl: the arithmetic of the white-box methods, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from anchors.metrics.attention import (
    head_kurtosis,
    receiver_scores,
    sentence_sums,
    split_half_reliability,
    top_heads,
    vertical_scores,
)
from anchors.metrics.token_kl import (
    full_kl,
    log_kl_by_span,
    normalise_rows,
    nucleus_mask,
    sequence_logprob,
    sparse_top_p_kl,
)

# --- sentence sums --------------------------------------------------------------------------------


def test_sentence_sums_equal_block_sums_and_drop_unowned_tokens():
    generator = torch.Generator().manual_seed(0)
    pattern = torch.rand(3, 7, 9, generator=generator)
    rows = torch.tensor([2, 0, 0, 1, 2, 1, 1])  # 2 = no sentence
    cols = torch.tensor([0, 0, 2, 1, 1, 1, 2, 0, 2])
    got = sentence_sums(pattern, rows, cols, n_sentences=2)
    assert got.shape == (3, 2, 2)
    for i in range(2):
        for j in range(2):
            block = pattern[:, rows == i][:, :, cols == j]
            assert torch.allclose(got[:, i, j], block.sum(dim=(-1, -2)))


# --- vertical scores, kurtosis, heads -------------------------------------------------------------


def _lower(n: int, seed: int = 0) -> np.ndarray:
    return np.tril(np.random.default_rng(seed).random((n, n)))


def test_vertical_score_averages_rows_at_least_proximity_below():
    matrix = _lower(8)
    got = vertical_scores(matrix, proximity_ignore=4)
    for j in range(8):
        rows = [matrix[i, j] for i in range(j + 4, 8)]
        assert (math.isnan(got[j]) and not rows) or got[j] == pytest.approx(np.mean(rows))
    assert np.isnan(got[4:]).all() and not np.isnan(got[:4]).any()  # the last 4 sentences get NaN


def test_vertical_scores_work_on_stacked_heads():
    stack = np.stack([_lower(6, seed) for seed in range(6)]).reshape(2, 3, 6, 6)
    got = vertical_scores(stack, proximity_ignore=2)
    assert got.shape == (2, 3, 6)
    assert np.allclose(got[1, 2], vertical_scores(stack[1, 2], proximity_ignore=2), equal_nan=True)


def test_control_depth_ranks_each_row_among_its_valid_entries():
    matrix = np.tril(np.ones((5, 5)))
    matrix[4, :] = [0.5, 0.1, 0.9, 7, 7]  # row 4, valid columns 0..2 (proximity 2): ranks 2, 1, 3 of 3
    matrix[3, :2] = [0.2, 0.3]  # row 3, valid columns 0..1: ranks 1, 2 of 2
    got = vertical_scores(matrix, proximity_ignore=2, control_depth=True)
    assert got[0] == pytest.approx(np.mean([1 / 1, 1 / 2, 2 / 3]))  # rows 2, 3, 4 (row 2 has one valid entry)
    assert got[1] == pytest.approx(np.mean([2 / 2, 1 / 3]))
    assert got[2] == pytest.approx(3 / 3)


def test_kurtosis_is_fisher_biased_and_omits_nan():
    values = np.array([[0.1, 0.2, 5.0, 0.1, np.nan, 0.3], [1.0, 1.0, 1.0, 1.0, 1.0, np.nan]])
    got = head_kurtosis(values)
    assert got[0] == pytest.approx(stats.kurtosis(values[0, :4].tolist() + [0.3], fisher=True, bias=True))
    assert np.isnan(got[1])  # constant: undefined


def test_top_heads_rank_by_kurtosis_skip_nan_and_layer_zero():
    kurt = np.array([[99.0, 98.0], [1.0, np.nan], [3.0, 2.0]])
    assert top_heads(kurt, 2) == [(2, 0), (2, 1)]
    assert top_heads(kurt, 10) == [(2, 0), (2, 1), (1, 0)]
    assert top_heads(kurt, 1, exclude_layers=()) == [(0, 0)]


def test_receiver_scores_average_the_chosen_heads():
    vertical = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3)
    vertical[1, 1, 2] = np.nan
    assert np.allclose(receiver_scores(vertical, [(0, 1), (1, 1)]), [(3 + 9) / 2, (4 + 10) / 2, 5])
    assert np.isnan(receiver_scores(vertical, [])).all()


def test_split_half_reliability():
    rng = np.random.default_rng(1)
    heads = rng.random((4, 5)) * 10
    traces = np.stack([heads + rng.normal(0, 0.01, heads.shape) for _ in range(6)])
    assert split_half_reliability(traces) == pytest.approx(1.0, abs=1e-3)
    assert split_half_reliability(traces[:1]) is None  # one trace: not computed
    noise = rng.random((6, 4, 5))
    assert abs(split_half_reliability(noise)) < 0.9
    # layer 0 is left out: making it disagree wildly between halves changes nothing
    broken = traces.copy()
    broken[0::2, 0] = 1000.0
    assert split_half_reliability(broken) == pytest.approx(split_half_reliability(traces))


# --- token KL -------------------------------------------------------------------------------------


def test_nucleus_is_the_smallest_top_set_reaching_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert nucleus_mask(logits, temperature=1.0, top_p=0.8, max_tokens=10).tolist() == [[True, True, False, False]]
    assert nucleus_mask(logits, temperature=1.0, top_p=0.81, max_tokens=10).tolist() == [[True, True, True, False]]
    assert nucleus_mask(logits, temperature=1.0, top_p=1.0, max_tokens=2).sum() == 2  # capped
    assert nucleus_mask(logits, temperature=1.0, top_p=0.1, max_tokens=10).sum() == 1  # the top token always


def test_sparse_kl_with_full_support_is_the_dense_kl():
    generator = torch.Generator().manual_seed(0)
    p, q = torch.randn(5, 12, generator=generator), torch.randn(5, 12, generator=generator)
    dense = full_kl(p / 0.6, q / 0.6)
    sparse = sparse_top_p_kl(p, q, temperature=0.6, top_p=1.0, max_tokens=12)
    assert torch.allclose(sparse, dense, atol=1e-6)
    assert torch.all(sparse_top_p_kl(p, p) == 0)


def test_sparse_kl_uses_the_union_of_both_nuclei():
    p = torch.tensor([[5.0, 4.0, -10.0, -10.0]])
    q = torch.tensor([[-10.0, 4.0, 5.0, -10.0]])
    expected = full_kl(p[:, :3] / 0.6, q[:, :3] / 0.6)  # the union is tokens 0..2
    got = sparse_top_p_kl(p, q, top_p=0.99)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_paper_mode_gives_tokens_outside_a_nucleus_logit_minus_1e9():
    p = torch.tensor([[5.0, 4.0, -10.0, -10.0]])
    q = torch.tensor([[-10.0, 4.0, 5.0, -10.0]])
    got = sparse_top_p_kl(p, q, top_p=0.99, mode="paper").item()
    # token 0 is in P's nucleus only: Q gives it logit -1e9, so its term alone is ~ p0 * 1e9 / 0.6
    p0 = torch.softmax(torch.tensor([5.0, 4.0, -1e9]) / 0.6, 0)[0].item()
    assert got == pytest.approx(p0 * 1e9 / 0.6, rel=1e-3)


def test_log_kl_by_span_and_row_normalisation():
    kl = np.array([0.0, 1.0, np.e - 1e-9, 0.0])
    assert log_kl_by_span(kl, [(0, 1), (1, 3), (3, 3)]).tolist()[:2] == pytest.approx([math.log(1e-9), 0.5 * (math.log(1 + 1e-9) + 1)])
    assert np.isnan(log_kl_by_span(kl, [(3, 3)])[0])
    raw = np.arange(16, dtype=float).reshape(4, 4)
    out = normalise_rows(raw)
    assert np.isnan(out[0]).all() and np.isnan(np.diag(out)).all() and np.isnan(out[1, 2:]).all()
    assert out[3, :3].tolist() == pytest.approx([-1, 0, 1]) and out[1, 0] == 0


def test_sequence_logprob_teacher_forces_the_targets():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.1, 0.9]]))
    assert sequence_logprob(logits, torch.tensor([1, 1])) == pytest.approx(math.log(0.5) + math.log(0.9))


def _dense_reference(p: torch.Tensor, q: torch.Tensor, mode: str, temperature=0.6, top_p=0.9, max_tokens=10):
    """The definition written out over the whole vocabulary, one position at a time."""
    nucleus_t = 1.0 if mode == "paper" else temperature
    out = []
    for p_row, q_row in zip(p.double(), q.double()):
        in_p = nucleus_mask(p_row[None], temperature=nucleus_t, top_p=top_p, max_tokens=max_tokens)[0]
        in_q = nucleus_mask(q_row[None], temperature=nucleus_t, top_p=top_p, max_tokens=max_tokens)[0]
        union = (in_p | in_q).nonzero().flatten()
        p_vals, q_vals = p_row[union].clone(), q_row[union].clone()
        if mode == "paper":
            p_vals[~in_p[union]] = -1e9
            q_vals[~in_q[union]] = -1e9
        log_p, log_q = torch.log_softmax(p_vals / temperature, 0), torch.log_softmax(q_vals / temperature, 0)
        out.append(max(0.0, float((log_p.exp() * (log_p - log_q)).sum())))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("mode", ["default", "paper"])
def test_sparse_kl_matches_the_definition_on_random_logits(mode):
    generator = torch.Generator().manual_seed(3)
    p = torch.randn(8, 60, generator=generator) * 3
    q = p + torch.randn(8, 60, generator=generator)
    got = sparse_top_p_kl(p, q, top_p=0.9, max_tokens=10, mode=mode)
    assert torch.allclose(got, _dense_reference(p, q, mode), rtol=1e-9, atol=1e-12)
