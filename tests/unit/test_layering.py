"""Imports point one way, down (docs/design.md): every import between anchors' packages is checked against the layer
order, and figures and reports import no model code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
# Lowest first; a module may import its own layer or any lower one.
LAYERS = [
    {"errors", "paths", "console", "_version", "types"},
    {"traces", "metrics"},
    {"arithmetic", "models"},
    {"rollouts"},
    {"thought_anchors"},
    {"labels"},
    {"outcomes"},
    {"methods", "testing", "testing_studies"},
    {"results"},
    {"viz", "report"},
    {"analysis"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# The two calls that go up on purpose, inside functions only: result objects' .plot() draws with the figures.
UPWARD_AT_CALL_TIME = {("anchors.results.trace", "anchors.report.figures"),
                       ("anchors.methods.blackbox.scores", "anchors.results")}


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported anchors module, at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                 [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found += [(name, id(node) in top) for name in names if name.startswith("anchors.")]
    return found


def test_every_import_points_down() -> None:
    wrong = []
    for path in sorted((SRC / "anchors").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        own = module.split(".")[1] if "." in module else None
        if own is None:
            continue  # the package face re-exports everything, lazily
        assert own in RANK, f"{module}: package {own!r} has no place in LAYERS (add it)"
        for target, module_level in imports(path):
            other = target.split(".")[1]
            if RANK[other] <= RANK[own]:
                continue
            allowed = (module, target) in UPWARD_AT_CALL_TIME and not module_level
            if not allowed:
                wrong.append(f"{module} imports {target}")
    assert wrong == [], "\n".join(wrong)


def test_figures_and_reports_import_no_model_code() -> None:
    code = ("import sys, anchors.viz, anchors.report.html, anchors.report.batch, anchors.report.ta, "
            "anchors.metrics.categories, anchors.cli.figures; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'transformer_lens') "
            "or m.startswith('anchors.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "[]"


def test_viz_and_report_never_name_the_models_package() -> None:
    for path in sorted((SRC / "anchors" / "viz").glob("*.py")) + sorted((SRC / "anchors" / "report").glob("*.py")):
        assert "anchors.models" not in path.read_text(encoding="utf-8"), path
