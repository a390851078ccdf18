"""Turning third-party exceptions into the one-line summaries our ModelLoadError messages quote."""

from __future__ import annotations


def one_line_summary(error: BaseException) -> str:
    """'TypeName: first line of the message' — enough to recognise the cause without a traceback."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
