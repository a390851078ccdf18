"""The rollout store: one SQLite file (WAL mode) that survives crashes and tops up only what is missing.

A rollout is stored under (request key, sampler identity, sampling-params fingerprint, prompt hash, request
seed, index): change any of them and it is a different rollout. Rows are inserted with `INSERT OR IGNORE`
and committed every fraction of a second, so a killed job loses at most the rows of its last moments and a
re-run never duplicates one. Each row points at a provenance record (engine, versions, device, batch size;
never an API key) and at its prompt and parameters, stored once, so the file describes itself.

Readers stream rows (`iter_rollouts`), so a study of millions of rollouts never has to fit in memory.
"""

from __future__ import annotations

import json
import sqlite3
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.paths import cache_dir
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams

SCHEMA_VERSION = 1
STORE_FILE = "rollouts.sqlite"  # also a results folder's own store (anchors.results.contract)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS provenance (id INTEGER PRIMARY KEY, record TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS params (fingerprint TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (hash TEXT PRIMARY KEY, text TEXT NOT NULL, token_ids BLOB);
CREATE TABLE IF NOT EXISTS rollouts (
    request_key TEXT NOT NULL,
    sampler TEXT NOT NULL,
    params TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    request_seed INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    text TEXT NOT NULL,
    token_ids BLOB NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    logprobs TEXT,
    answer TEXT,
    correct INTEGER,
    elapsed_s REAL,
    provenance INTEGER NOT NULL REFERENCES provenance(id),
    created_at REAL NOT NULL,
    PRIMARY KEY (request_key, sampler, params, prompt_hash, request_seed, idx)
) WITHOUT ROWID;
"""
_COLUMNS = ("request_key, sampler, params, prompt_hash, request_seed, idx, seed, text, token_ids, finish_reason, "
            "prompt_tokens, completion_tokens, logprobs, answer, correct, elapsed_s, provenance, created_at")


def default_store_path() -> Path:
    """The store in the cache folder (cache/ or $ANCHORS_CACHE), for sampling outside a results folder."""
    return cache_dir() / STORE_FILE


class RolloutStore:
    """A SQLite rollout store. Open with `RolloutStore(path)`; use as a context manager or call `close()`."""

    def __init__(self, path: str | Path | None = None, *, commit_every_s: float = 0.5) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.commit_every_s = commit_every_s
        self._connection = _connect(self.path)
        self._last_commit = time.monotonic()
        self._pending = 0

    # -- writing --------------------------------------------------------------------------------------

    def register(self, sampler: str, params: SamplingParams, requests: Sequence[PrefixRequest],
                 provenance: dict[str, Any]) -> int:
        """Record the params, prompts and provenance a job's rows point at; returns the provenance id."""
        with self._connection:
            self._connection.execute("INSERT OR IGNORE INTO params VALUES (?, ?)",
                                     (params.fingerprint(), json.dumps(asdict(params), sort_keys=True)))
            self._connection.executemany(
                "INSERT OR IGNORE INTO prompts VALUES (?, ?, ?)",
                [(r.prompt_hash(), r.prompt_text, _pack(r.prompt_ids) if r.prompt_ids is not None else None)
                 for r in requests])
            record = json.dumps({"sampler": sampler, **provenance}, sort_keys=True, default=str)
            self._connection.execute("INSERT OR IGNORE INTO provenance (record) VALUES (?)", (record,))
            row = self._connection.execute("SELECT id FROM provenance WHERE record = ?", (record,)).fetchone()
        return int(row[0])

    def add(self, request: PrefixRequest, sampler: str, params: SamplingParams, rollout: Rollout,
            provenance_id: int) -> None:
        """Insert one rollout (ignored if already stored); committed within `commit_every_s`."""
        if not rollout.ok:
            raise ValueError("failed rollouts are not stored (a re-run retries them)")
        self._connection.execute(
            f"INSERT OR IGNORE INTO rollouts ({_COLUMNS}) VALUES ({', '.join('?' * 18)})",
            (request.key, sampler, params.fingerprint(), request.prompt_hash(), request.seed, rollout.index,
             rollout.seed, rollout.text, _pack(rollout.token_ids), rollout.finish_reason, rollout.prompt_tokens,
             rollout.completion_tokens, None if rollout.logprobs is None else json.dumps(rollout.logprobs),
             None, None, rollout.elapsed_s, provenance_id, time.time()))
        self._pending += 1
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        self._connection.commit()
        self._last_commit = time.monotonic()
        self._pending = 0

    def set_answers(self, sampler: str, params: SamplingParams, request: PrefixRequest,
                    answers: Iterable[tuple[int, str | None, bool | None]]) -> None:
        """Record graded answers (index, answer, correct) of a request's rollouts."""
        with self._connection:
            self._connection.executemany(
                "UPDATE rollouts SET answer = ?, correct = ? WHERE request_key = ? AND sampler = ? AND params = ? "
                "AND prompt_hash = ? AND request_seed = ? AND idx = ?",
                [(answer, None if correct is None else int(correct), request.key, sampler, params.fingerprint(),
                  request.prompt_hash(), request.seed, index) for index, answer, correct in answers])

    # -- reading --------------------------------------------------------------------------------------

    def stored_indices(self, sampler: str, params: SamplingParams, request: PrefixRequest) -> set[int]:
        rows = self._connection.execute(
            "SELECT idx FROM rollouts WHERE request_key = ? AND sampler = ? AND params = ? AND prompt_hash = ? "
            "AND request_seed = ? AND idx < ?",
            (request.key, sampler, params.fingerprint(), request.prompt_hash(), request.seed, request.n))
        return {int(index) for (index,) in rows}

    def rollouts(self, sampler: str, params: SamplingParams, request: PrefixRequest) -> list[Rollout]:
        """The stored rollouts of one request (indices below `request.n`), sorted by index."""
        cursor = self._connection.execute(
            "SELECT request_key, idx, seed, text, token_ids, finish_reason, prompt_tokens, completion_tokens, "
            "logprobs, elapsed_s FROM rollouts WHERE request_key = ? AND sampler = ? AND params = ? "
            "AND prompt_hash = ? AND request_seed = ? AND idx < ? ORDER BY idx",
            (request.key, sampler, params.fingerprint(), request.prompt_hash(), request.seed, request.n))
        return [_rollout(row) for row in cursor]

    def iter_rollouts(self, *, sampler: str | None = None, key_prefix: str | None = None) -> Iterator[dict[str, Any]]:
        """Every stored rollout as a dict (streamed), optionally only one sampler's or keys with a prefix."""
        clauses, values = [], []
        if sampler is not None:
            clauses.append("r.sampler = ?")
            values.append(sampler)
        if key_prefix is not None:
            clauses.append("substr(r.request_key, 1, ?) = ?")
            values += [len(key_prefix), key_prefix]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        cursor = self._connection.execute(
            f"SELECT r.*, p.text AS prompt_text, pr.record AS params_record FROM rollouts r "
            f"JOIN prompts p ON p.hash = r.prompt_hash JOIN params pr ON pr.fingerprint = r.params {where} "
            "ORDER BY r.request_key, r.sampler, r.params, r.prompt_hash, r.request_seed, r.idx", values)
        names = [column[0] for column in cursor.description]
        for row in cursor:
            yield _as_record(dict(zip(names, row)))

    def count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM rollouts").fetchone()[0])

    def provenance(self, provenance_id: int) -> dict[str, Any]:
        row = self._connection.execute("SELECT record FROM provenance WHERE id = ?", (provenance_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def close(self) -> None:
        self.commit()
        self._connection.close()

    def __enter__(self) -> RolloutStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(path, timeout=60.0, isolation_level="DEFERRED")
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed row survives a power cut as well as a killed process.
        connection.execute("PRAGMA synchronous=FULL")
        connection.executescript(_SCHEMA)
        _check_schema(connection, path)
    except sqlite3.DatabaseError as error:
        raise InputError(f"{path}: not a usable rollout store ({error}); pass another --store path") from None
    return connection


def _check_schema(connection: sqlite3.Connection, path: Path) -> None:
    row = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        with connection:
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    elif int(row[0]) > SCHEMA_VERSION:
        raise InputError(f"{path}: rollout store schema {row[0]} is newer than this anchors supports "
                         f"({SCHEMA_VERSION}); upgrade anchors")


def _pack(ids: Sequence[int]) -> bytes:
    # uint32, native order (little-endian on every platform torch supports): 4 bytes a token, not ~6 as JSON
    return array("I", ids).tobytes()


def _unpack(blob: bytes | None) -> list[int]:
    if not blob:
        return []
    packed = array("I")
    packed.frombytes(blob)
    return packed.tolist()


def _rollout(row: Sequence[Any]) -> Rollout:
    key, index, seed, text, token_ids, finish, prompt_tokens, completion_tokens, logprobs, elapsed = row
    return Rollout(key=key, index=index, seed=seed, text=text, token_ids=_unpack(token_ids), finish_reason=finish,
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   logprobs=None if logprobs is None else json.loads(logprobs), elapsed_s=elapsed)


def _as_record(row: dict[str, Any]) -> dict[str, Any]:
    row["token_ids"] = _unpack(row["token_ids"])
    row["logprobs"] = None if row["logprobs"] is None else json.loads(row["logprobs"])
    row["params_record"] = json.loads(row["params_record"])
    row["correct"] = None if row["correct"] is None else bool(row["correct"])
    return row
