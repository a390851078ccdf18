"""Writing figures: interactive HTML (offline) and static PNG/SVG through kaleido driving a local Chromium.

Static export needs Chrome or Chromium on the machine (Debian: `apt-get install chromium`; another location:
set BROWSER_PATH). kaleido is asked never to load MathJax, whose default is a CDN URL: with it every export would try the
network. plotly.js comes from the installed plotly package, so nothing is fetched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from anchors.errors import AnchorsError

FORMATS = ("html", "png", "svg")
STATIC_FORMATS = ("png", "svg", "pdf", "jpg", "webp")
PLOTLY_JS = "plotly.min.js"
_BATCH = 8  # figures per kaleido call: a progress step every few seconds
Progress = Callable[[Sequence, str], Iterable]
DEFAULT_SIZE = (1000, 650)


class ExportError(AnchorsError):
    """A static image could not be written (usually: no Chrome/Chromium for kaleido)."""


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in ("html", *STATIC_FORMATS)]
    if unknown or not chosen:
        raise AnchorsError(f"unknown figure format(s) {unknown or chosen}: choose from html, {', '.join(STATIC_FORMATS)}")
    return chosen


def write_figures(
    figures: Mapping[Path, go.Figure],
    formats: Sequence[str] = FORMATS,
    *,
    root: Path | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    progress: Progress | None = None,
) -> list[Path]:
    """Write each figure to `<stem>.<format>` for every format; returns the files written.

    HTML files load plotly.js from one shared `plotly.min.js` written in `root` (default: the common parent),
    so a folder of figures opens offline without repeating the 4.8 MB library in every file. Static formats
    go through kaleido in one browser session for all figures.
    """
    formats = check_formats(formats)
    stems = {Path(k): v for k, v in figures.items()}
    written: list[Path] = []
    if "html" in formats and stems:
        written += _write_html(stems, root or Path(os.path.commonpath([str(p.parent) for p in stems])))
    static = [f for f in formats if f != "html"]
    if static and stems:
        written += write_static({stem.with_suffix(f".{fmt}"): fig for stem, fig in stems.items() for fmt in static},
                                size=size, progress=progress)
    return written


def _write_html(stems: Mapping[Path, go.Figure], root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    library = root / PLOTLY_JS
    if not library.is_file():
        library.write_text(get_plotlyjs(), encoding="utf-8")
    written = []
    for stem, fig in stems.items():
        path = stem.with_suffix(".html")
        path.parent.mkdir(parents=True, exist_ok=True)
        relative = os.path.relpath(library, path.parent).replace(os.sep, "/")
        fig.write_html(path, include_plotlyjs=relative, include_mathjax=False, full_html=True,
                       config={"responsive": True, "displaylogo": False})
        written.append(path)
    return written


def write_static(
    figures: Mapping[Path, go.Figure],
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    scale: float = 2.0,
    progress: Progress | None = None,
) -> list[Path]:
    """PNG/SVG/PDF files (format from each path's suffix), offline, through one Chromium that kaleido keeps
    open for the whole batch (one tab per core). `progress` wraps the batches of `_BATCH` figures."""
    try:
        import kaleido
        from kaleido.errors import ChromeNotFoundError
    except ImportError as exc:  # pragma: no cover - kaleido is a dependency
        raise ExportError(f"static export needs the kaleido package ({exc}); HTML figures still work") from None
    if not _browser_found():
        raise ExportError(_NO_BROWSER)
    specs = [_spec(path, fig, size, scale) for path, fig in figures.items()]
    batches = [specs[i : i + _BATCH] for i in range(0, len(specs), _BATCH)]
    server = getattr(kaleido, "_global_server", None)
    ours = not (server is not None and server.is_running())
    try:
        if ours:
            kaleido.start_sync_server(n=max(1, min(4, os.cpu_count() or 1)), mathjax=False, silence_warnings=True)
        for batch in progress(batches, "exporting images") if progress else batches:
            kaleido.write_fig_from_object_sync(batch)
    except ChromeNotFoundError:
        raise ExportError(_NO_BROWSER) from None
    finally:
        if ours:
            kaleido.stop_sync_server(silence_warnings=True)
    missing = [str(p) for p in figures if not p.is_file()]
    if missing:
        raise ExportError(f"kaleido reported success but did not write {missing[:3]}")
    return list(figures)


_NO_BROWSER = ("PNG/SVG export needs Chrome or Chromium: install it (Debian/Ubuntu: apt-get install chromium) "
               "or set BROWSER_PATH to its executable; the HTML figures were written")


def _browser_found() -> bool:
    """Whether kaleido will find a browser. Checked first because without one its export server waits forever
    (seen with kaleido 1.x on a machine without Chromium) instead of raising ChromeNotFoundError."""
    if os.environ.get("BROWSER_PATH"):
        return Path(os.environ["BROWSER_PATH"]).is_file()
    try:
        from choreographer.browsers.chromium import Chromium  # kaleido's own browser lookup
    except ImportError:  # pragma: no cover - another kaleido backend: let it look for itself
        return True
    return Chromium.find_browser(skip_local=False) is not None


def _spec(path: Path, fig: go.Figure, size: tuple[int, int], scale: float) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower()
    return {"fig": fig.to_dict(), "path": path,
            "opts": {"format": fmt, "width": size[0], "height": size[1], "scale": 1 if fmt == "svg" else scale}}


def standalone_html(fig: go.Figure, path: str | Path) -> Path:
    """One figure as a single offline HTML file with plotly.js inlined (~4.8 MB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, include_mathjax=False, config={"responsive": True, "displaylogo": False})
    return path
