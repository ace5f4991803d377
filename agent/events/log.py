"""The agent's durable event log: `state_dir/events.db` (SQLite, WAL, synchronous FULL).

Rules:
- An event is appended, and the append is on disk, before its source is acknowledged (the
  outbox rows deleted): a process killed in between captures the same change again, and
  since an event's id is derived from its source (the outbox row), the second append is
  ignored. Nothing is lost; nothing appears twice.
- `seq` grows by one per event appended and is never reused: it is the event's `sequence`
  and what `after=` and a consumer's committed position count in.
- A named consumer's position only moves forward, and only when it says so (`commit`).
- Retention drops the oldest events past `age` or past `max_bytes` of data; the log says how
  far it was trimmed (`first_seq`), so a consumer behind it can be told what it missed.
- For a polled resource the log also keeps where the poll stands and which keys it has seen
  (to tell created from updated, and to find deletes), written in the same transaction as
  the events they produced: a poll killed at any point repeats nothing and skips nothing.
All methods block: the service calls them in a thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bridgehead.certs.keyfiles import ensure_private_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    resource TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    partitionkey TEXT NOT NULL,
    time TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS consumers (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS polled (
    resource TEXT PRIMARY KEY,
    position TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known (
    resource TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (resource, key)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Change:
    """One change to append: what capture knows of it."""

    id: str
    resource: str
    type: str
    subject: str
    partitionkey: str
    time: str
    data: Any


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    resource: str
    type: str
    subject: str
    partitionkey: str
    time: str
    data: bytes
    """The JSON of `data`, as stored."""

    def cloudevent(self, source: str) -> dict[str, Any]:
        """The CloudEvents 1.0 record (JSON format), `sequence` and `partitionkey` as the
        extensions of those names define them (strings)."""
        return {
            "specversion": "1.0", "id": self.id, "source": f"{source}/resources/{self.resource}",
            "type": self.type, "subject": self.subject, "time": self.time,
            "datacontenttype": "application/json", "sequence": str(self.seq),
            "partitionkey": self.partitionkey, "data": orjson.Fragment(self.data),
        }  # fmt: skip


class EventLog:
    def __init__(self, path: Path) -> None:
        ensure_private_dir(path.parent)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, changes: Sequence[Change]) -> int:
        """Append `changes` in one durable transaction; how many were new (an id already in
        the log is a change captured before, skipped)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                added = self._insert(changes)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return added

    def _insert(self, changes: Sequence[Change]) -> int:
        """Insert the changes whose ids are new, in the transaction under way."""
        rows = [
            (c.id, c.resource, c.type, c.subject, c.partitionkey, c.time, orjson.dumps(c.data))
            for c in changes
        ]
        ids = [row[0] for row in rows]
        known = {
            found for (found,) in self._db.execute(
                f"SELECT id FROM events WHERE id IN ({','.join('?' * len(ids))})", ids,
            )
        } if ids else set()  # fmt: skip
        new = list({r[0]: r for r in rows if r[0] not in known}.values())
        self._db.executemany(
            "INSERT INTO events (id, resource, type, subject, partitionkey, time, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", new,
        )  # fmt: skip
        return len(new)

    def polled(self, resource: str) -> list[Any] | None:
        """Where the poll of `resource` stands (its last position, as JSON), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT position FROM polled WHERE resource = ?", (resource,)
            ).fetchone()
        return None if row is None else list(orjson.loads(row[0]))

    def known_among(self, resource: str, keys: Sequence[str]) -> set[str]:
        """Which of `keys` (JSON) the poll of `resource` has seen."""
        if not keys:
            return set()
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                f"SELECT key FROM known WHERE resource = ? AND key IN ({marks})",
                [resource, *keys],
            ).fetchall()
        return {str(row[0]) for row in rows}

    def known_page(self, resource: str, after: str, limit: int) -> list[str]:
        """Keys (JSON) the poll of `resource` has seen, in order, after `after`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM known WHERE resource = ? AND key > ? ORDER BY key LIMIT ?",
                (resource, after, limit),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def append_polled(
        self,
        resource: str,
        changes: Sequence[Change],
        *,
        position: list[Any] | None = None,
        seen: Sequence[str] = (),
        gone: Sequence[str] = (),
    ) -> int:
        """Append a poll's events and, in the same transaction, its new position and the keys
        it saw appear (`seen`) or disappear (`gone`); how many events were new."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                added = self._insert(changes)
                if position is not None:
                    self._db.execute(
                        "INSERT INTO polled VALUES (?, ?) ON CONFLICT (resource) DO UPDATE "
                        "SET position = excluded.position", (resource, orjson.dumps(position)),
                    )  # fmt: skip
                self._db.executemany("INSERT OR IGNORE INTO known VALUES (?, ?)",
                                     [(resource, k) for k in seen])  # fmt: skip
                self._db.executemany("DELETE FROM known WHERE resource = ? AND key = ?",
                                     [(resource, k) for k in gone])  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return added

    def read(
        self,
        after: int,
        limit: int,
        resources: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
    ) -> list[Event]:
        """Events past `after`, oldest first, of these resources and types (None: any)."""
        where, params = ["seq > ?"], [after]
        for column, allowed in (("resource", resources), ("type", types)):
            if allowed is not None:
                values = sorted(set(allowed))
                if not values:
                    return []
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params += values  # type: ignore[arg-type]
        sql = (
            "SELECT seq, id, resource, type, subject, partitionkey, time, data FROM events "
            f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, [*params, limit]).fetchall()
        return [Event(*row) for row in rows]

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def first_seq(self) -> int:
        """The oldest event still kept (retention may have dropped older ones); 0 if none."""
        with self._lock:
            row = self._db.execute("SELECT min(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def position(self, consumer: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT position FROM consumers WHERE name = ?", (consumer,)
            ).fetchone()
        return int(row[0]) if row else 0

    def commit(self, consumer: str, upto: int, now: datetime) -> int:
        """Move `consumer` to `upto` (never backwards, never past the last event); its new
        position."""
        with self._lock:
            last = int(self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
            upto = min(upto, last)
            self._db.execute(
                "INSERT INTO consumers (name, position, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position), "
                "updated = excluded.updated",
                (consumer, upto, now.isoformat()),
            )
            row = self._db.execute(
                "SELECT position FROM consumers WHERE name = ?", (consumer,)
            ).fetchone()
        return int(row[0])

    def consumers(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT name, position FROM consumers").fetchall()
        return {str(name): int(position) for name, position in rows}

    def trim(self, now: datetime, age: timedelta, max_bytes: int) -> int:
        """Drop events older than `age`, then the oldest past `max_bytes` of data; how many."""
        cutoff = (now - age).isoformat()
        with self._lock:
            before = self._db.total_changes
            self._db.execute("DELETE FROM events WHERE time < ?", (cutoff,))
            total = int(self._db.execute(
                "SELECT coalesce(sum(length(data)), 0) FROM events").fetchone()[0])  # fmt: skip
            if total > max_bytes:
                self._db.execute(
                    "DELETE FROM events WHERE seq <= (SELECT seq FROM (SELECT seq, sum(length("
                    "data)) OVER (ORDER BY seq DESC) AS kept FROM events) WHERE kept > ? "
                    "ORDER BY seq DESC LIMIT 1)",
                    (max_bytes,),
                )
            return self._db.total_changes - before
