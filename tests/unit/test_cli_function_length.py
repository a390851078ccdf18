"""The command line stays thin (docs/design.md): a command parses its options, builds one request, makes one library
call and prints; what does more belongs in the library. So no function in anchors.cli has a body longer than 25 lines
(the signature with its option declarations and the docstring not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "src" / "anchors" / "cli"
MOST = 25


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function (blank lines included)."""
    body = function.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0  # type: ignore[operator]


def long_functions(folder: Path, most: int) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_lines(node) > most:
                found.append(f"{path.name}:{node.lineno} {node.name}: {body_lines(node)} lines")
    return found


def test_no_cli_function_is_longer_than_25_lines() -> None:
    assert long_functions(CLI, MOST) == []


def test_the_count_skips_the_signature_and_docstring_and_sees_a_long_body(tmp_path: Path) -> None:
    options = "\n".join(f"    option_{i}: int = {i}," for i in range(40))
    body = "\n".join(f"    x = {i}" for i in range(26))
    (tmp_path / "commands.py").write_text(f'def short(\n{options}\n) -> None:\n    """Doc.\n\n    More."""\n    return None\n\n\n'
                                          f"def long() -> None:\n{body}\n")
    assert long_functions(tmp_path, MOST) == ["commands.py:49 long: 26 lines"]
