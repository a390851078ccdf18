"""Shared fixtures: the authors' released data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def ta_data_dir() -> Path:
    """../shared/data/thought-anchors-viewer next to the checkout, or $ANCHORS_TA_DATA."""
    return Path(os.environ.get("ANCHORS_TA_DATA", REPO.parent / "shared" / "data" / "thought-anchors-viewer"))


@pytest.fixture(scope="session")
def ta_data() -> Path:
    path = ta_data_dir()
    if not path.is_dir():
        pytest.skip(f"the Thought Anchors data folder {path} is absent (set ANCHORS_TA_DATA to its location)")
    return path


def pytest_report_header(config) -> str:
    device = os.environ.get("ANCHORS_TEST_DEVICE", "cpu")
    return f"tiny-model tests on ANCHORS_TEST_DEVICE={device}, ANCHORS_TEST_DTYPE={os.environ.get('ANCHORS_TEST_DTYPE', 'float32')}"
