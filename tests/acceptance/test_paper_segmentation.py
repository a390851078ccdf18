"""Paper mode reproduces the Thought Anchors authors' released chunk lists exactly, on every released trace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from anchors.traces.segment import split_sentences

# The authors' data sits next to the checkout (../shared/data); ANCHORS_TA_DATA points elsewhere.
DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "thought-anchors-viewer"
DATA_ROOT = Path(os.environ.get("ANCHORS_TA_DATA", DEFAULT_ROOT))
EXPECTED_TRACES = 20  # 2 models x {correct, incorrect} x 5 problems

pytestmark = pytest.mark.skipif(
    not DATA_ROOT.is_dir(),
    reason=f"Thought Anchors viewer data not found at {DATA_ROOT} (set ANCHORS_TA_DATA to its folder)",
)


def trace_dirs() -> list[Path]:
    return sorted(DATA_ROOT.glob("*/*/problem_*")) if DATA_ROOT.is_dir() else []


def read(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def test_all_traces_are_present() -> None:
    assert len(trace_dirs()) == EXPECTED_TRACES


@pytest.mark.parametrize("trace_dir", trace_dirs(), ids=lambda p: "/".join(p.parts[-3:]))
def test_paper_mode_matches_the_authors_chunks(trace_dir: Path) -> None:
    solution = read(trace_dir / "base_solution.json")["solution"]  # type: ignore[index]
    expected = [chunk["chunk"] for chunk in read(trace_dir / "chunks_labeled.json")]  # type: ignore[union-attr]
    sentences = split_sentences(solution, mode="paper")
    assert [s.text for s in sentences] == expected
    # Spans point into the given solution text: ordered, and each starts with its chunk's first piece.
    assert all(a.end <= b.start for a, b in zip(sentences, sentences[1:]))
    assert all(solution[s.start : s.end].startswith(s.text.split(" ")[0]) for s in sentences)
