"""The rollout store: one SQLite file (WAL mode) that survives crashes and tops up only what is missing.

A rollout is stored under (request key, sampler identity, sampling-params fingerprint, prompt hash, request
seed, index): change any of them and it is a different rollout. Rows are inserted with `INSERT OR IGNORE`
and committed every fraction of a second, so a killed job loses at most the rows of its last moments and a
re-run never duplicates one. Each row points at a provenance record (engine, versions, device, batch size;
never an API key) and at its prompt and parameters, stored once, so the file describes itself.

Readers stream rows (`iter_rollouts`), so a study of millions of rollouts never has to fit in memory.

Rollouts a sampler could not produce are not stored (a re-run retries them), but each is noted in `failures` with
its cause, so `anchors store info` can say what is still missing and why. Stores written on different machines
(shards of one study) merge into one (`merge`): rows are copied once, rows present in both must agree.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anchors.errors import InputError
from anchors.paths import cache_dir
from anchors.rollouts.base import PrefixRequest, Rollout, SamplingParams

SCHEMA_VERSION = 1
STORE_FILE = "rollouts.sqlite"  # also a results folder's own store (anchors.results.contract)

_KEY = ("request_key", "sampler", "params", "prompt_hash", "request_seed", "idx")
# Where the key columns come from: a rollout's request (key, prompt, seed) and the sampler's identity and params.
_KEY_TYPES = ("TEXT", "TEXT", "TEXT", "TEXT", "INTEGER", "INTEGER")
_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS provenance (id INTEGER PRIMARY KEY, record TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS params (fingerprint TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (hash TEXT PRIMARY KEY, text TEXT NOT NULL, token_ids BLOB);
CREATE TABLE IF NOT EXISTS rollouts (
    {key_columns},
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
    PRIMARY KEY ({key})
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failures (
    {key_columns},
    error TEXT NOT NULL,
    failed_at REAL NOT NULL,
    PRIMARY KEY ({key})
) WITHOUT ROWID;
"""
_SCHEMA = _SCHEMA_TEMPLATE.format(
    key_columns=",\n    ".join(f"{name} {kind} NOT NULL" for name, kind in zip(_KEY, _KEY_TYPES, strict=True)),
    key=", ".join(_KEY))
# What a rollout is; two stores holding one key must agree on these (timing, provenance and grading may differ).
_CONTENT = ("seed", "text", "token_ids", "finish_reason", "prompt_tokens", "completion_tokens", "logprobs")
_COLUMNS = ", ".join(_KEY + _CONTENT + ("answer", "correct", "elapsed_s", "provenance", "created_at"))


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

    def add_failure(self, request: PrefixRequest, sampler: str, params: SamplingParams, rollout: Rollout) -> None:
        """Note a rollout that could not be sampled, and why (the latest cause is kept)."""
        self._connection.execute(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (request.key, sampler, params.fingerprint(), request.prompt_hash(), request.seed, rollout.index,
             rollout.error or "unknown error", time.time()))

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

    # -- several stores -------------------------------------------------------------------------------

    def merge(self, source: str | Path, *, name_conflicts: int = 10) -> MergeCounts:
        """Copy the rows of the store at `source` that this one lacks (with their prompts, params, provenance and
        noted failures). A row whose key is here already is skipped when its content is the same and refused when
        it differs (this store's row is kept; the first `name_conflicts` are named). Running it again adds nothing."""
        path = Path(source)
        if path.resolve() == self.path.resolve():
            raise InputError(f"{path}: this is the store merged into; give it once, as --into")
        check_store(path)
        self.commit()
        connection = self._connection
        connection.execute("ATTACH DATABASE ? AS source", (str(path),))
        try:
            with connection:
                return self._merge_attached(path, name_conflicts)
        finally:
            connection.execute("DETACH DATABASE source")

    def _merge_attached(self, path: Path, name_conflicts: int) -> MergeCounts:
        connection = self._connection
        on_key = " AND ".join(f"s.{c} = m.{c}" for c in _KEY)
        differs = " OR ".join(f"s.{c} IS NOT m.{c}" for c in _CONTENT)
        rows = _scalar(connection, "SELECT count(*) FROM source.rollouts")
        shared = _scalar(connection, f"SELECT count(*) FROM source.rollouts s JOIN main.rollouts m ON {on_key}")
        conflicting = _scalar(connection, f"SELECT count(*) FROM source.rollouts s JOIN main.rollouts m ON {on_key} "
                                          f"WHERE {differs}")
        named = connection.execute(
            f"SELECT {', '.join('s.' + c for c in _KEY)} FROM source.rollouts s JOIN main.rollouts m ON {on_key} "
            f"WHERE {differs} ORDER BY {', '.join('s.' + c for c in _KEY)} LIMIT ?", (name_conflicts,)).fetchall()
        connection.execute("INSERT OR IGNORE INTO main.params SELECT fingerprint, record FROM source.params")
        connection.execute("INSERT OR IGNORE INTO main.prompts SELECT hash, text, token_ids FROM source.prompts")
        connection.execute("INSERT OR IGNORE INTO main.provenance (record) SELECT record FROM source.provenance")
        # provenance ids are local to a file: each row points at the record with the same text here
        picked = ", ".join("mp.id" if c == "provenance" else f"s.{c}" for c in _COLUMNS.split(", "))
        added = connection.execute(
            f"INSERT OR IGNORE INTO main.rollouts ({_COLUMNS}) SELECT {picked} FROM source.rollouts s "
            "JOIN source.provenance sp ON sp.id = s.provenance JOIN main.provenance mp ON mp.record = sp.record"
        ).rowcount
        if _has_table(connection, "source", "failures"):
            connection.execute("INSERT OR IGNORE INTO main.failures SELECT * FROM source.failures")
        return MergeCounts(str(path), rows, added, shared - conflicting, conflicting,
                           [StoreKey(*row) for row in named])

    def summary(self) -> list[dict[str, Any]]:
        """One dict per (sampler, params) the store holds rows or noted failures of: rows, request keys, traces,
        finish reasons, completion tokens, the params record, and the failed rollouts still missing by cause."""
        connection = self._connection
        records = dict(connection.execute("SELECT fingerprint, record FROM params").fetchall())
        groups: dict[tuple[str, str], dict[str, Any]] = {}

        def group(sampler: str, params: str) -> dict[str, Any]:
            return groups.setdefault((sampler, params), {
                "sampler": sampler, "params": params, "params_record": json.loads(records.get(params, "{}")),
                "rows": 0, "request_keys": 0, "traces": 0, "completion_tokens": 0, "finish_reasons": {},
                "missing_after_failure": 0, "failure_causes": {}})

        trace = "substr(request_key, 1, instr(request_key || '/', '/') - 1)"  # a key's trace: up to its first '/'
        for sampler, params, rows, keys, traces, tokens in connection.execute(
                f"SELECT sampler, params, count(*), count(DISTINCT request_key), count(DISTINCT {trace}), "
                "sum(completion_tokens) FROM rollouts GROUP BY 1, 2 ORDER BY 1, 2"):
            group(sampler, params).update(rows=rows, request_keys=keys, traces=traces, completion_tokens=tokens)
        for sampler, params, finish, count in connection.execute(
                "SELECT sampler, params, finish_reason, count(*) FROM rollouts GROUP BY 1, 2, 3"):
            group(sampler, params)["finish_reasons"][finish] = count
        still_missing = " AND ".join(f"r.{c} = f.{c}" for c in _KEY)
        for sampler, params, cause, count in connection.execute(
                f"SELECT f.sampler, f.params, f.error, count(*) FROM failures f WHERE NOT EXISTS "
                f"(SELECT 1 FROM rollouts r WHERE {still_missing}) GROUP BY 1, 2, 3 ORDER BY 4 DESC"):
            found = group(sampler, params)
            found["missing_after_failure"] += count
            found["failure_causes"][cause] = count
        return list(groups.values())

    def close(self) -> None:
        self.commit()
        self._connection.close()

    def __enter__(self) -> RolloutStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class StoreKey:
    """The key of one stored rollout."""

    request_key: str
    sampler: str
    params: str
    prompt_hash: str
    request_seed: int
    idx: int

    def __str__(self) -> str:
        return f"{self.request_key} #{self.idx} ({self.sampler}, params {self.params}, seed {self.request_seed})"


@dataclass(frozen=True)
class MergeCounts:
    """What merging one source store did: its rows, how many were added, already there, or refused."""

    source: str
    rows: int
    added: int
    identical: int
    conflicting: int
    conflicts: list[StoreKey] = field(default_factory=list)  # the first few refused keys


def check_store(path: Path) -> None:
    """A store to read from: an existing SQLite file with a rollouts table of a schema this anchors reads."""
    if not path.is_file():
        raise InputError(f"{path}: no such rollout store")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            if not _has_table(connection, "main", "rollouts"):
                raise InputError(f"{path}: an SQLite file without a rollouts table, not a rollout store")
            row = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as error:
        raise InputError(f"{path}: not a usable rollout store ({error})") from None
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise InputError(f"{path}: rollout store schema {row[0]} is newer than this anchors supports "
                         f"({SCHEMA_VERSION}); upgrade anchors")


def _has_table(connection: sqlite3.Connection, schema: str, name: str) -> bool:
    query = f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (name,)).fetchone() is not None


def _scalar(connection: sqlite3.Connection, query: str) -> int:
    return int(connection.execute(query).fetchone()[0])


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
