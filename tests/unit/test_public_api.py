"""The package face: every lazily exported name resolves, and the names static type checkers see (the
TYPE_CHECKING imports) are exactly the exported ones, from the same modules."""

from __future__ import annotations

import ast
from pathlib import Path

import anchors

INIT = Path(anchors.__file__)


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    return {alias.asname or alias.name: node.module for node in ast.walk(block) if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_lazy_exports_and_type_checking_imports_agree() -> None:
    assert _type_checking_imports() == anchors._EXPORTS


def test_every_export_resolves() -> None:
    for name in anchors.__all__:
        assert getattr(anchors, name) is not None, name
