"""The version of anchors: read by the package face, the results it writes and the build (pyproject: dynamic)."""

__version__ = "0.2.0"
