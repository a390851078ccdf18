"""viz/ and report/ work on numbers and texts: importing them loads no model code (design.md layers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_figures_and_reports_import_no_model_code() -> None:
    code = ("import sys, anchors.viz, anchors.report.html, anchors.report.batch, anchors.report.ta, "
            "anchors.metrics.categories, anchors.cli.figures; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'transformer_lens') "
            "or m.startswith('anchors.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "[]"


def test_viz_sources_never_name_the_models_package() -> None:
    for path in sorted((SRC / "anchors" / "viz").glob("*.py")) + sorted((SRC / "anchors" / "report").glob("*.py")):
        assert "anchors.models" not in path.read_text(), path
