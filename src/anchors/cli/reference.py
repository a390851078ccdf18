"""The command-line reference (docs/cli.md), generated from the commands themselves so it cannot drift from them:
`python -m anchors.cli.reference > docs/cli.md`. A test fails when the file and the commands differ."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer

HEADER = """# Command-line reference

Every command and option of `anchors`, generated from the code (`python -m anchors.cli.reference > docs/cli.md`).
`anchors COMMAND --help` shows the same in the terminal.
"""


def cli_reference(app: typer.Typer) -> str:
    root = typer.main.get_command(app)
    parts = [HEADER]
    for path, command in _commands(root, "anchors"):
        parts.append(_section(path, command))
    return "\n".join(parts).rstrip() + "\n"


def _commands(group: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(command line, command) for every command under `group` (typer's click objects, duck-typed: typer ships
    its own copy of click)."""
    if hasattr(group, "list_commands"):
        if prefix == "anchors":
            yield prefix, group
        for name in group.list_commands(None):
            command = group.get_command(None, name)
            if command is not None and not command.hidden:
                yield from _commands(command, f"{prefix} {name}")
    else:
        yield prefix, group


def _section(path: str, command: Any) -> str:
    lines = [f"## `{path}`", "", _plain(command.help or "").replace("<", "&lt;").replace(">", "&gt;"), ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
    if arguments:
        lines.append("Arguments: " + ", ".join(f"`{a.name.upper()}`" for a in arguments) + "")
        lines.append("")
    if options:
        lines += ["| option | value | default | what it does |", "|---|---|---|---|"]
        lines += [_row(option) for option in options]
        lines.append("")
    return "\n".join(lines)


def _row(option: Any) -> str:
    names = " / ".join(f"`{n}`" for n in (*option.opts, *option.secondary_opts))
    value = "" if option.is_flag else _value(option)
    default = "" if option.default is None or option.is_flag and option.default is False else f"`{option.default}`"
    if isinstance(option.default, (list, tuple)):
        default = ""
    return f"| {names} | {value} | {default} | {_cell(option.help or '')} |"


def _value(option: Any) -> str:
    shown = option.display_type(None).strip("<>")  # e.g. "path", "int range", "default|paper"
    return " \\| ".join(f"`{c}`" for c in shown.split("|")) if "|" in shown else shown


def _plain(text: str) -> str:
    """Help texts are escaped for rich (\\[ …): the reference shows them as written."""
    return re.sub(r"\\\[", "[", text).strip()


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, and `<trace id>` shown as text rather than read as an HTML tag."""
    return " ".join(_plain(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


if __name__ == "__main__":  # pragma: no cover - the documented way to regenerate docs/cli.md
    from anchors.cli import app as anchors_app

    print(cli_reference(anchors_app), end="")
