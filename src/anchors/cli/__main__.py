"""`python -m anchors.cli`: the command line."""

from anchors.cli import app

app(prog_name="anchors")
