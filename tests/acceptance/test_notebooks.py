"""The notebooks under notebooks/ execute top to bottom (nbclient, the current Python as kernel), and are
committed without outputs. Notebooks on the authors' data skip when that folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NEEDS_TA_DATA = {"quickstart", "paper_figures"}


def test_there_are_notebooks() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "paper_figures", "own_results", "whole_trace"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.stem in NEEDS_TA_DATA:  # skips with a reason when the authors' data is absent
        monkeypatch.setenv("ANCHORS_TA_DATA", str(request.getfixturevalue("ta_data")))
    monkeypatch.setenv("ANCHORS_NOTEBOOK_MODEL", "tiny-qwen2")  # whole_trace: every method, quickly
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    book = nbformat.read(path, as_version=4)  # the kernel inherits this process's environment
    client = NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    outputs = [o.get("data", {}) for c in book.cells for o in c.get("outputs", [])]
    assert any(d.get("application/vnd.plotly.v1+json") for d in outputs), f"{path.name} drew no figure"
    if os.environ.get("ANCHORS_REQUIRE_BROWSER") == "1":  # with a browser, every plot also carries a static PNG
        figures = [d for d in outputs if d.get("application/vnd.plotly.v1+json")]
        assert all(d.get("image/png") for d in figures), f"{path.name}: a plot without its PNG copy"
