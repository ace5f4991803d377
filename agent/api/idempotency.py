"""The durable record of writes made with an `Idempotency-Key` (a SQLite file in the state folder).

A key moves through three states, each written and synced before the step it guards:
- `pending`: claimed before the database transaction starts. Found after a crash, nothing
  was committed (the commit comes after `prepared`), so the key is free again.
- `prepared`: the response and a proof of the write, stored just before the database commit.
  Found after a crash, the commit may or may not have happened: the proof is checked
  against the database (`agent.api.writes.committed`) to decide.
- `done`: the outcome is final; a repeat with the same request gets the stored response.
Keys are per principal and expire after the configured time: an expired key is free at once,
and `run_expiry` deletes expired rows in bounded batches by the `created` index, off the
request path. A principal holds at most `max_keys` live keys (`KeyLimitReached` past it);
the counts are kept in memory, loaded once at open. All file work runs on one dedicated
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from bridgehead.agent.api.message import ApiResponse
from bridgehead.agent.values import dumps

T = TypeVar("T")
Clock = Callable[[], float]

SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'prepared', 'done')),
    status INTEGER,
    headers TEXT,
    body BLOB,
    proof TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX IF NOT EXISTS writes_created ON writes (created);
CREATE INDEX IF NOT EXISTS writes_principal_created ON writes (principal, created);
CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY CHECK (id = 1), checked REAL NOT NULL);
"""
EXPIRY_BATCH = 1000
EXPIRY_INTERVAL = 1.0
MAX_KEYS = 100_000


class KeyLimitReached(Exception):
    """The principal holds its most live keys; one frees up after `retry_after` seconds."""

    def __init__(self, limit: int, retry_after: float) -> None:
        super().__init__(f"{limit} live Idempotency-Keys")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class Entry:
    request_hash: str
    state: str
    response: ApiResponse | None
    proof: dict[str, Any] | None


class IdempotencyStore:
    def __init__(
        self, path: Path, ttl: float, clock: Clock = time.time, max_keys: int = MAX_KEYS
    ) -> None:
        self._path = path
        self._ttl = ttl
        self._clock = clock
        self._max_keys = max_keys
        self._thread = ThreadPoolExecutor(1, "bh-idempotency")
        self._db: sqlite3.Connection | None = None
        self._live: Counter[str] = Counter()
        """Keys per principal in the file (expired ones until their batch deletes them)."""

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.touch(mode=0o600, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        self._live = Counter(
            dict(db.execute("SELECT principal, count(*) FROM writes GROUP BY principal"))
        )
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=False)  # idle: the close above ran on it

    @property
    def size(self) -> int:
        """Keys held (expired ones until their batch deletes them)."""
        return sum(self._live.values())

    async def check_writable(self) -> None:
        """Write (and sync) one row, as a claim would; raises what stops writes (sqlite3.Error,
        OSError, RuntimeError when closed)."""
        await self._run(self._touch)

    def _touch(self) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO health VALUES (1, ?)", (self._clock(),))

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the idempotency store is not open")
        return self._db

    async def claim(self, principal: str, key: str, request_hash: str) -> Entry | None:
        """Claim the key as `pending`; if it is already known, the entry that holds it."""
        return await self._run(self._claim, principal, key, request_hash)

    def _claim(self, principal: str, key: str, request_hash: str) -> Entry | None:
        now = self._clock()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute(
                "SELECT request_hash, state, status, headers, body, proof, created FROM writes "
                "WHERE principal = ? AND key = ?",
                (principal, key),
            ).fetchone()
            if row is not None and row[-1] >= now - self._ttl:
                return _entry(row[:-1])
            if row is None:
                self._check_room(principal, now)
            self.db.execute(
                "INSERT OR REPLACE INTO writes (principal, key, request_hash, state, created) "
                "VALUES (?, ?, ?, 'pending', ?)",
                (principal, key, request_hash, now),
            )
            self._live[principal] += row is None
        return None

    def _check_room(self, principal: str, now: float) -> None:
        if self._live[principal] < self._max_keys:
            return
        (oldest,) = self.db.execute(
            "SELECT min(created) FROM writes WHERE principal = ?", (principal,)
        ).fetchone()
        if oldest is not None and oldest < now - self._ttl:
            self._expire(principal)  # its own expired keys make room at once
            if self._live[principal] < self._max_keys:
                return
            (oldest,) = self.db.execute(
                "SELECT min(created) FROM writes WHERE principal = ?", (principal,)
            ).fetchone()
        raise KeyLimitReached(self._max_keys, max((oldest or now) + self._ttl - now, 1.0))

    def _expire(self, principal: str | None = None, batch: int = EXPIRY_BATCH) -> int:
        """Delete up to `batch` expired keys (of one principal, or of any); how many went."""
        cutoff = self._clock() - self._ttl
        params: tuple[Any, ...]
        where, params = "created < ?", (cutoff,)
        if principal is not None:
            where, params = "principal = ? AND created < ?", (principal, cutoff)
        gone = self.db.execute(
            f"DELETE FROM writes WHERE rowid IN (SELECT rowid FROM writes WHERE {where} "
            "LIMIT ?) RETURNING principal",
            (*params, batch),
        ).fetchall()
        self._live.subtract(name for (name,) in gone)
        return len(gone)

    async def expire(self, batch: int = EXPIRY_BATCH) -> int:
        """One bounded batch of expiry (its own transaction); how many keys it deleted."""

        def run() -> int:
            with self.db:
                return self._expire(batch=batch)

        return await self._run(run)

    async def run_expiry(
        self,
        interval: float = EXPIRY_INTERVAL,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Forever: delete expired keys batch by batch, claims running between batches;
        wait `interval` once none are left."""
        while True:
            if await self.expire() < EXPIRY_BATCH:
                await sleep(interval)

    async def prepare(
        self, principal: str, key: str, response: ApiResponse, proof: dict[str, Any]
    ) -> None:
        await self._run(self._save, principal, key, "prepared", response, proof)

    async def finish(self, principal: str, key: str, response: ApiResponse) -> None:
        await self._run(self._save, principal, key, "done", response, None)

    def _save(
        self,
        principal: str,
        key: str,
        state: str,
        response: ApiResponse,
        proof: dict[str, Any] | None,
    ) -> None:
        assert isinstance(response.body, bytes), "streamed responses are not stored"
        with self.db:
            self.db.execute(
                "UPDATE writes SET state = ?, status = ?, headers = ?, body = ?, proof = ? "
                "WHERE principal = ? AND key = ?",
                (
                    state,
                    response.status,
                    orjson.dumps(response.headers).decode(),
                    response.body,
                    dumps(proof).decode() if proof is not None else None,
                    principal,
                    key,
                ),
            )

    async def release(self, principal: str, key: str) -> None:
        """Forget the key: the write did not happen, so a retry may run it."""
        await self._run(self._release, principal, key)

    def _release(self, principal: str, key: str) -> None:
        with self.db:
            gone = self.db.execute(
                "DELETE FROM writes WHERE principal = ? AND key = ?", (principal, key)
            ).rowcount
        self._live[principal] -= gone


def _entry(row: tuple[Any, ...]) -> Entry:
    request_hash, state, status, headers, body, proof = row
    response = None
    if status is not None:
        response = ApiResponse(int(status), orjson.loads(headers), bytes(body or b""))
    return Entry(request_hash, state, response, orjson.loads(proof) if proof else None)
