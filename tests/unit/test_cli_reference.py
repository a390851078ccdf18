"""docs/cli.md documents every command and option as the code defines them (it is generated from the commands)."""

from __future__ import annotations

from pathlib import Path

from anchors.cli import app
from anchors.cli.reference import cli_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_reference_matches_the_commands() -> None:
    expected = cli_reference(app)
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/cli.md is out of date: regenerate it with `python -m anchors.cli.reference > docs/cli.md`")


def test_every_command_and_option_is_in_it() -> None:
    text = cli_reference(app)
    for command in ("score", "analyze", "receivers", "suppress", "patch", "causality", "label", "report", "figures",
                    "compat check", "resample", "generate", "split", "grade", "demo", "models"):
        assert f"## `anchors {command}`" in text, command
    for option in ("--bootstrap", "--threshold", "--matrix", "--top", "--embedder", "--metric", "--timeout", "--store",
                   "--overwrite"):
        assert f"`{option}`" in text, option
