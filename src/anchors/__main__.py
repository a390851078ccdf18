"""`python -m anchors` runs the CLI."""

from anchors.cli import app

app(prog_name="anchors")
