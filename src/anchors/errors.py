"""Exceptions shared by every layer: each says what went wrong and what to do about it."""

from __future__ import annotations


class AnchorsError(Exception):
    """Base class of every error anchors raises on purpose (the CLI prints these without a traceback)."""


class InputError(AnchorsError):
    """Bad user input: a file, a line, a field, and what to do."""


class ModelLoadError(AnchorsError):
    """A model could not be found or loaded; the message names the source that was tried."""
