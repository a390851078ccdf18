"""Where the tiny-model integration tests run: `ANCHORS_TEST_DEVICE` (default "cpu") and `ANCHORS_TEST_DTYPE`
(default "float32"), so the same tests check a GPU (`ANCHORS_TEST_DEVICE=cuda`, see benchmarks/gpu_install.sh).

With the defaults every test behaves exactly as on CPU. Tests that only make sense on CPU (the bundled SmolLM2,
which is not carried to a GPU machine; CPU-reproducible samples) use `cpu_only`.
"""

from __future__ import annotations

import os

import pytest

TEST_DEVICE = os.environ.get("ANCHORS_TEST_DEVICE", "cpu")
TEST_DTYPE = os.environ.get("ANCHORS_TEST_DTYPE", "float32")
ON_CPU = TEST_DEVICE == "cpu"

cpu_only = pytest.mark.skipif(not ON_CPU, reason=f"CPU-only check (ANCHORS_TEST_DEVICE={TEST_DEVICE})")


def tolerance(fp32: float) -> float:
    """The fp32 tolerance, widened for half-precision runs (bf16 keeps ~3 significant digits)."""
    return fp32 if TEST_DTYPE in ("float32", "fp32") else max(fp32, 5e-2)


def load_on_test_device(name, **options):
    """`load_model` on the test device and dtype."""
    from anchors.models import load_model

    return load_model(name, device=TEST_DEVICE, dtype=TEST_DTYPE, **options)


NEAR_TIE = 1e-4  # logits: rounding between two code paths on one model is ~1e-6 here; a real preference is larger


def assert_same_greedy_tokens(handle, prompt_ids, got, expected) -> None:
    """Two greedy decodings of one prompt by two code paths (batch layouts, kernels) agree token for token, up
    to a near-tie: the two paths round differently in the last bits (another matmul shape, another CPU's
    BLAS), which can flip an argmax only where the top two logits are within NEAR_TIE. At the first differing
    token the reference's own logits must show such a tie, else the paths really disagree."""
    import torch

    got, expected = list(got), list(expected)
    if got == expected:
        return
    first = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    ids = torch.tensor([list(prompt_ids) + expected[:first]], device=handle.device)
    with torch.no_grad():
        logits = handle.hf_model(input_ids=ids).logits[0, -1].float()
    top = torch.topk(logits, 2).values
    margin = float(top[0] - top[1])
    assert margin < NEAR_TIE, f"greedy paths differ at token {first} where the top-2 logit margin is {margin:.3g} (no tie)"
