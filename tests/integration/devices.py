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
