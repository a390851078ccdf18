"""Cache of `grade` results: an in-process LRU in front of a SQLite file under `cache_dir("grading")`.

The file stores only the content hash, the extracted answer, its key and the verdict (never the text
itself). Delete it at any time; set `ANCHORS_NO_CACHE=1` to skip it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from anchors.paths import cache_dir

log = logging.getLogger(__name__)


Row = tuple[str | None, str | None, bool | None, str]  # answer, key, correct, status

_SCHEMA = "CREATE TABLE IF NOT EXISTS grades (digest TEXT PRIMARY KEY, answer TEXT, key TEXT, correct INTEGER, status TEXT)"


@functools.lru_cache(maxsize=None)
def _library_versions() -> str:
    """Part of every cache key: a new math-verify or sympy may grade differently."""
    from importlib import metadata  # here, not at the top: keeps `import anchors` quick

    found = []
    for name in ("math-verify", "sympy", "antlr4-python3-runtime"):
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ",".join(found)


CACHE_FORMAT = "anchors-grade-1"


def cache_digest(mode: str, method: str, text: str, gold: str | None) -> str:
    """sha256 over everything that decides a grade (JSON, so no field can bleed into the next)."""
    payload = json.dumps([CACHE_FORMAT, _library_versions(), mode, method, text, gold], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def persistent_cache_enabled() -> bool:
    return os.environ.get("ANCHORS_NO_CACHE", "").strip().lower() not in {"1", "true", "yes", "on"}


class _ResultCache:
    """Thread-safe: one lock guards both the LRU and the (shared) SQLite connection."""

    def __init__(self, max_items: int = 65536) -> None:
        self._max_items = max_items
        self.forget()

    def forget(self) -> None:
        """Fresh state without closing anything (after a fork the handles belong to the parent)."""
        self._memory: OrderedDict[str, Row] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._db_path: Path | None = None

    def get(self, digest: str, persistent: bool) -> Row | None:
        with self._lock:
            row = self._memory.get(digest)
            if row is not None:
                self._memory.move_to_end(digest)
                return row
            row = self._db_get(digest) if persistent else None
            if row is not None:
                self._remember(digest, row)
            return row

    def put(self, digest: str, row: Row, persistent: bool) -> None:
        with self._lock:
            self._remember(digest, row)
            if persistent:
                self._db_put(digest, row)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()

    def reset(self) -> None:
        """Forget everything held in this process, including the open database handle."""
        with self._lock:
            self._memory.clear()
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
            self._db, self._db_path = None, None

    def _remember(self, digest: str, row: Row) -> None:
        self._memory[digest] = row
        self._memory.move_to_end(digest)
        while len(self._memory) > self._max_items:
            self._memory.popitem(last=False)

    def _db_get(self, digest: str) -> Row | None:
        try:
            found = self._connection().execute(
                "SELECT answer, key, correct, status FROM grades WHERE digest = ?", (digest,)
            ).fetchone()
        except sqlite3.Error as exc:
            return self._db_failed(exc)
        if found is None:
            return None
        answer, key, correct, status = found
        return answer, key, None if correct is None else bool(correct), status

    def _db_put(self, digest: str, row: Row) -> None:
        answer, key, correct, status = row
        try:
            self._connection().execute(
                "INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?, ?)",
                (digest, answer, key, None if correct is None else int(correct), status),
            )
        except sqlite3.Error as exc:
            self._db_failed(exc)

    def _connection(self) -> sqlite3.Connection:
        # Resolved on every call: $ANCHORS_CACHE may change (tests), and the file may be deleted.
        path = cache_dir("grading") / "grades.sqlite"
        if self._db is None or path != self._db_path or not path.exists():
            if self._db is not None:
                self._db.close()
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")  # readers in other processes never block
            self._db.execute(_SCHEMA)
            self._db_path = path
        return self._db

    def _db_failed(self, exc: sqlite3.Error) -> None:
        # A broken cache must never break grading: warn, drop the handle, carry on without it.
        log.warning("grading cache unavailable (%s); continuing without it", exc)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db, self._db_path = None, None
        return None


RESULTS = _ResultCache()


def _after_fork_in_child() -> None:
    """A forked child must not share the parent's SQLite handle or lock."""
    RESULTS.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
