"""Every import in the Python examples of README.md and docs/*.md names something that exists.

The examples are not run (they need models and data), but a renamed module or function must not leave the docs
pointing at nothing: each `import anchors…` / `from anchors… import …` line of a ```python block is executed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
IMPORT = re.compile(r"^(?:from anchors[\w.]* import .+|import anchors[\w.]*(?: as \w+)?)$")


def doc_imports() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for block in BLOCK.findall(path.read_text(encoding="utf-8")):
            for line in block.splitlines():
                statement = line.split("#")[0].strip()
                if IMPORT.match(statement):
                    found.append((path.name, statement))
    return found


def test_the_docs_have_python_examples() -> None:
    assert len(doc_imports()) >= 10  # the check below must have something to check


@pytest.mark.parametrize(("doc", "statement"), doc_imports(), ids=lambda value: str(value)[:60])
def test_every_documented_import_exists(doc: str, statement: str) -> None:
    try:
        exec(statement, {})
    except ImportError as error:
        pytest.fail(f"{doc}: `{statement}` fails: {error}")
