"""The durable record of writes made with an `Idempotency-Key` (a SQLite file in the state folder).

A key moves through three states, each written and synced before the step it guards:
- `pending`: claimed before the database transaction starts. Found after a crash, nothing
  was committed (the commit comes after `prepared`), so the key is free again.
- `prepared`: the response and a proof of the write, stored just before the database commit.
  Found after a crash, the commit may or may not have happened: the proof is checked
  against the database (`agent.api.writes.committed`) to decide.
- `done`: the outcome is final; a repeat with the same request gets the stored response.
Keys are per principal and expire after the configured time. All file work runs on one
dedicated thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from agent.api.message import ApiResponse
from agent.api.values import dumps

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
)
"""


@dataclass(frozen=True)
class Entry:
    request_hash: str
    state: str
    response: ApiResponse | None
    proof: dict[str, Any] | None


class IdempotencyStore:
    def __init__(self, path: Path, ttl: float, clock: Clock = time.time) -> None:
        self._path = path
        self._ttl = ttl
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, "bh-idempotency")
        self._db: sqlite3.Connection | None = None

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
        db.execute(SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=False)  # idle: the close above ran on it

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
            self.db.execute("DELETE FROM writes WHERE created < ?", (now - self._ttl,))
            row = self.db.execute(
                "SELECT request_hash, state, status, headers, body, proof FROM writes "
                "WHERE principal = ? AND key = ?",
                (principal, key),
            ).fetchone()
            if row is None:
                self.db.execute(
                    "INSERT INTO writes (principal, key, request_hash, state, created) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    (principal, key, request_hash, now),
                )
                return None
        return _entry(row)

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
            self.db.execute("DELETE FROM writes WHERE principal = ? AND key = ?", (principal, key))


def _entry(row: tuple[Any, ...]) -> Entry:
    request_hash, state, status, headers, body, proof = row
    response = None
    if status is not None:
        response = ApiResponse(int(status), orjson.loads(headers), bytes(body or b""))
    return Entry(request_hash, state, response, orjson.loads(proof) if proof else None)
