"""How a command fails: one line saying what went wrong, where and what to do, never a traceback.

Exit codes: 2 for a fatal error (nothing, or not everything, could be done), 1 when some input records were skipped
(the commands raise that themselves). `anchors --debug CMD` or ANCHORS_DEBUG=1 shows the traceback instead.

Output paths are checked before a command does any work, so an hour of sampling is never lost at the final write.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer

from anchors import console
from anchors.errors import AnchorsError

F = TypeVar("F", bound=Callable[..., Any])
_debug = False  # set per invocation by the app's --debug option

# What to do about an OSError, by errno (the message already says what and where).
_ADVICE = {
    errno.EEXIST: "a file is in the way where a folder is needed: remove it or choose another path",
    errno.ENOTDIR: "part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "this is a folder where a file is needed: give a file path",
    errno.EACCES: "choose a location you may read or write, or change its permissions",
    errno.EPERM: "choose a location you may read or write, or change its permissions",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.ENOSPC: "the disk is full: free some space or choose another disk",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another disk",
    errno.ENOENT: "check the path (a pseudo file system such as /proc cannot hold files)",
    errno.ENAMETOOLONG: "use a shorter name",
}


class OutputError(AnchorsError):
    """An output path that cannot be written (found before any work starts)."""


def set_debug(flag: bool) -> None:
    global _debug
    _debug = flag


def debugging() -> bool:
    return _debug or os.environ.get("ANCHORS_DEBUG", "") not in ("", "0")


def handles_errors(command: F) -> F:
    """Print every failure of `command` as one `error:` line and exit 2 (with --debug: the traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exit codes, and usage errors typer prints with the command's usage line
        except Exception as exc:
            if debugging():
                raise
            console.error(describe(exc))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def describe(exc: BaseException) -> str:
    """One line for a failure: anchors' own errors as written, the expected Python ones explained."""
    if isinstance(exc, AnchorsError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, RecursionError):
        return ("input nested too deeply to process (a JSON value with hundreds of nested brackets?): "
                "check the input files; rerun with --debug to see where")
    if isinstance(exc, MemoryError):
        return "out of memory: try fewer or shorter traces, a smaller --batch-size, or a machine with more memory"
    text = " ".join(str(exc).split())  # one line, however long the exception's own message
    text = text if len(text) <= 300 else text[:299] + "…"
    return (f"internal error: {type(exc).__name__}: {text}. This is a bug in anchors: rerun with --debug "
            "(or ANCHORS_DEBUG=1) and report the traceback")


def describe_os_error(exc: OSError) -> str:
    # filename2 is the destination of a rename: the path the user asked for, not the temporary file
    where = exc.filename2 if exc.filename2 is not None else exc.filename
    what = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno) if exc.errno is not None else None
    head = f"{where}: {what}" if where is not None else what
    return f"{head} ({advice})" if advice else head


def checks_outputs(**kinds: Literal["file", "dir", "auto"]) -> Callable[[F], F]:
    """Check the command's output-path parameters (name -> 'file', 'dir', or 'auto': a file when the path has a
    suffix, e.g. labels.jsonl, else a folder) before its body runs."""

    def decorate(command: F) -> F:
        signature = inspect.signature(command)

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            for name, kind in kinds.items():
                path = bound.arguments.get(name)
                if path is not None:
                    chosen = ("file" if Path(path).suffix else "dir") if kind == "auto" else kind
                    check_output(Path(path), chosen, "--" + name.replace("_", "-"))  # type: ignore[arg-type]
            return command(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def check_output(path: Path, kind: Literal["file", "dir"], option: str) -> None:
    """Raise OutputError unless `path` can be written as a file / a folder (created with its parents if needed).

    Nothing is created: the nearest existing folder is probed with a temporary file, removed at once."""
    if kind == "dir" and path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: is a file, but a folder is needed here: remove it or choose another path")
    if kind == "file" and path.is_dir():
        raise OutputError(f"{option} {path}: is a folder, but a file is needed here: give a file path inside it")
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path}: the file is not writable: change its permissions or choose another path")
    folder = path if kind == "dir" else path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path.cwd())
    if not existing.is_dir():
        raise OutputError(f"{option} {path}: {existing} is a file, not a folder: choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot write in {existing} ({exc.strerror}): choose a writable location") from None
