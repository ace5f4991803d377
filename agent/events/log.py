"""The agent's durable event log: `state_dir/events.db` (SQLite, WAL, synchronous FULL).

Rules:
- An event is appended, and the append is on disk, before its source is acknowledged (the
  outbox rows deleted): a process killed in between captures the same change again, and
  since an event's id is derived from its source (the outbox row), the second append is
  ignored. Nothing is lost; nothing appears twice.
- `seq` grows by one per event appended and is never reused: it is the event's `sequence`
  and what `after=` and a consumer's committed position count in.
- A named consumer's position only moves forward, and only when it says so (`commit`),
  except by an explicit `rewind` (a replay). What it gave up on (`dead`) is kept, with the
  reason, in the same transaction as the commit that moves past it; with it the consumer may
  leave a `report` of how its deliveries go (failures, last error, whether it is disabled),
  which the admin page and the next run of the consumer read back.
- Retention drops the oldest events past `age` or past `max_bytes` of data; the log says how
  far it was trimmed (`first_seq`), so a consumer behind it can be told what it missed.
- For a polled resource the log also keeps where the poll stands and which keys it has seen
  (to tell created from updated, and to find deletes), written in the same transaction as
  the events they produced: a poll killed at any point repeats nothing and skips nothing.
All methods block: the service calls them in a thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
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
    updated TEXT NOT NULL,
    report TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS dead_letters (
    consumer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
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
class DeadLetter:
    """An event a consumer gave up on (its retries ran out), and why."""

    seq: int
    id: str
    reason: str
    at: str


@dataclass(frozen=True)
class Consumer:
    """A named consumer as the log keeps it."""

    name: str
    position: int
    updated: str
    report: dict[str, Any]
    dead_letters: int


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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(consumers)")}
        if "report" not in columns:  # a log written before consumers kept a report
            self._db.execute("ALTER TABLE consumers ADD COLUMN report TEXT NOT NULL DEFAULT '{}'")
        path.chmod(0o600)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One durable write transaction, under the lock; rolled back on any failure."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, changes: Sequence[Change]) -> int:
        """Append `changes` in one durable transaction; how many were new (an id already in
        the log is a change captured before, skipped)."""
        with self._write():
            return self._insert(changes)

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
        with self._write():
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

    def commit(
        self,
        consumer: str,
        upto: int,
        now: datetime,
        *,
        dead: Sequence[DeadLetter] = (),
        report: dict[str, Any] | None = None,
    ) -> int:
        """Move `consumer` to `upto` (never backwards, never past the last event), keeping
        `dead` and `report` in the same transaction; its new position."""
        with self._write():
            last = int(self._db.execute(
                "SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])  # fmt: skip
            self._db.execute(
                "INSERT INTO consumers (name, position, updated) VALUES (?, ?, ?) ON "
                "CONFLICT (name) DO UPDATE SET position = max(position, excluded.position), "
                "updated = excluded.updated", (consumer, min(upto, last), now.isoformat()),
            )  # fmt: skip
            if report is not None:
                self._db.execute("UPDATE consumers SET report = ? WHERE name = ?",
                                 (orjson.dumps(report).decode(), consumer))  # fmt: skip
            self._db.executemany(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?)",
                [(consumer, d.seq, d.id, d.reason, d.at) for d in dead],
            )  # fmt: skip
            row = self._db.execute(
                "SELECT position FROM consumers WHERE name = ?", (consumer,)
            ).fetchone()
        return int(row[0])

    def rewind(self, consumer: str, to: int, now: datetime) -> int:
        """Set `consumer` back (or forward, never past the last event) to `to`, for a replay:
        its dead letters past `to` are dropped, since they will be tried again, and its report
        is cleared; the new position."""
        with self._write():
            last = int(self._db.execute(
                "SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])  # fmt: skip
            to = max(0, min(to, last))
            self._db.execute(
                "INSERT INTO consumers (name, position, updated) VALUES (?, ?, ?) ON "
                "CONFLICT (name) DO UPDATE SET position = excluded.position, updated = "
                "excluded.updated, report = '{}'", (consumer, to, now.isoformat()),
            )  # fmt: skip
            self._db.execute("DELETE FROM dead_letters WHERE consumer = ? AND seq > ?",
                             (consumer, to))  # fmt: skip
        return to

    def consumer(self, name: str) -> Consumer | None:
        found = self.consumers(name)
        return found[0] if found else None

    def consumers(self, name: str | None = None) -> list[Consumer]:
        """Every named consumer (or the one called `name`), by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, position, updated, report, (SELECT count(*) FROM dead_letters "
                "WHERE consumer = name) FROM consumers WHERE ? IS NULL OR name = ? ORDER BY name",
                (name, name),
            ).fetchall()  # fmt: skip
        return [_consumer(row) for row in rows]

    def dead_letters(self, consumer: str, limit: int = 1000, after: int = 0) -> list[DeadLetter]:
        """What `consumer` gave up on past sequence `after`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, reason, at FROM dead_letters WHERE consumer = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (consumer, after, limit),
            ).fetchall()  # fmt: skip
        return [DeadLetter(*row) for row in rows]

    def seq_of(self, ids: Sequence[str]) -> dict[str, int]:
        """The sequence of each of `ids` still in the log."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(f"SELECT id, seq FROM events WHERE id IN ({marks})",
                                    list(ids)).fetchall()  # fmt: skip
        return {str(i): int(seq) for i, seq in rows}

    def time_after(self, seq: int) -> str | None:
        """The time of the first event past `seq` (the oldest a consumer there has not
        processed), or None when it is at the end."""
        with self._lock:
            row = self._db.execute(
                "SELECT time FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (seq,)
            ).fetchone()
        return None if row is None else str(row[0])

    def trim(self, now: datetime, age: timedelta, max_bytes: int) -> int:
        """Drop events (and dead letters) older than `age`, then the oldest events past
        `max_bytes` of data; how many events and dead letters."""
        cutoff = (now - age).isoformat()
        with self._lock:
            before = self._db.total_changes
            self._db.execute("DELETE FROM events WHERE time < ?", (cutoff,))
            self._db.execute("DELETE FROM dead_letters WHERE at < ?", (cutoff,))
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

    def size(self) -> int:
        """The bytes the log's database holds: its pages in use times the page size."""
        with self._lock:
            row = self._db.execute("SELECT (page_count - freelist_count) * page_size FROM "
                                   "pragma_page_count(), pragma_freelist_count(), "
                                   "pragma_page_size()").fetchone()  # fmt: skip
        return int(row[0])


def _consumer(row: tuple[Any, ...]) -> Consumer:
    name, position, updated, report, dead = row
    return Consumer(str(name), int(position), str(updated), dict(orjson.loads(report)), int(dead))
