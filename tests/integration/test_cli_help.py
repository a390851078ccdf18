"""What a new user meets first in `anchors COMMAND --help`: the fixed choices of an option listed, in rich's boxes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from anchors.cli import app


@pytest.mark.parametrize(("command", "option", "choices"), [
    ("score", "--mode", "default|paper"), ("score", "--tags", "auto|offline|llm|none"), ("score", "--backend", "hf|openai"),
    ("patch", "--align", "end|start"), ("label", "--labeller", "auto|offline|llm"),
])
def test_fixed_choices_are_listed_in_help(command: str, option: str, choices: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and option in result.output and f"<{choices}>" in result.output
    assert "╭─ Options" in result.output  # rich help
