"""Change Tracking capture: a SQL Server table's changes (`agent.events.tracking`) read into
the event log, with no triggers and no outbox.

Rules (what a process killed at each step leaves):
- A batch of changes is read after the stored position, turned into events and appended
  to the log with the new position in one transaction. Killed before the append: the same
  changes are read again. An event's id is derived from the resource, the change's
  SYS_CHANGE_VERSION and its key, so a batch read again appends nothing twice.
- The first start, with no position stored, begins at CHANGE_TRACKING_CURRENT_VERSION():
  changes made before it are not events. That position is stored at once.
- A stored position older than CHANGE_TRACKING_MIN_VALID_VERSION of the table means the
  database cleaned up changes before they were read: one error says so, and reading goes
  on from the current version.
- `data` is the row as the API serves it when the change is read, or the key alone for a
  delete or for a row already deleted again.
- An idle table's position (its base moving with the database's version) is stored at
  most once a minute; lost by a kill, it is only read again, finding nothing.

What this mode cannot see (Change Tracking keeps each row's latest change, not each change):
- several changes to a row between two reads are one event, its operation netted since the
  last version read whole (a row inserted and deleted in between is one `deleted`);
- when one transaction changed more rows than a batch, a row it inserted that changes again
  before the rest of that transaction is read is `created` a second time;
- changes the database cleaned up (after CHANGE_RETENTION) before they were read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from bridgehead.agent.api.reads import encode_rows, rows_by_key
from bridgehead.agent.api.records import freeze_all, thaw_all
from bridgehead.agent.catalog import Resource
from bridgehead.agent.events.capture import TYPES, subject_of, utc_text
from bridgehead.agent.events.ddl import Capture
from bridgehead.agent.events.log import Change, EventLog
from bridgehead.agent.events.tracking import (
    Position,
    changes_statement,
    next_position,
    versions_statement,
)
from bridgehead.agent.values import dumps

log = logging.getLogger("bridgehead.events")
BATCH = 1000
IDLE_SAVE = 60.0
Clock = Callable[[], dt.datetime]


class TrackingOff(Exception):
    """Change tracking is not on for the table (or its database)."""


class ChangeTrackingReader:
    def __init__(
        self,
        resource: Resource,
        events: EventLog,
        *,
        notify: Callable[[], None] = lambda: None,
        clock: Clock = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.resource, self.events, self.notify, self.clock = resource, events, notify, clock
        self.name = resource.name
        self.capture = Capture(
            resource.name, resource.table.ref, tuple(c.name for c in resource.key)
        )
        self._position: Position | None = None
        self._saved_at = 0.0

    async def once(self) -> int:
        """Capture one batch of changes; how many changes it read."""
        current, min_valid = await self._versions()
        position = self._position or await self._stored()
        if position is None:
            await self._save([], Position.start(current))
            return 0
        if position.base < min_valid:
            log.error(
                "events: resources.%s: SQL Server cleaned up changes (before version %d) "
                "before Bridgehead read them, so their events were missed; reading goes on "
                "from version %d; set a longer CHANGE_RETENTION on the database",
                self.name, min_valid, current,
            )  # fmt: skip
            await self._save([], Position.start(current))
            return 0
        sql, params = changes_statement(self.capture, self._thawed(position), current, BATCH)
        rows = await self.resource.adapter.fetch(sql, params, BATCH)
        after = self._frozen(next_position(position, rows, current, BATCH))
        changes = await self._changes(rows)
        if changes or self._idle_save_due():
            await self._save(changes, after)
        else:
            self._position = after
        if changes:
            self.notify()
        return len(rows)

    async def _versions(self) -> tuple[int, int]:
        sql, params = versions_statement(self.capture)
        rows = await self.resource.adapter.fetch(sql, params, 1)
        current, min_valid = rows[0] if rows else (None, None)
        if current is None or min_valid is None:
            raise TrackingOff(
                f"change tracking is not on for {self.resource.config.table}; run bridgehead "
                "events install (it needs ALTER on the table and the database)"
            )
        return int(current), int(min_valid)

    async def _stored(self) -> Position | None:
        saved = await asyncio.to_thread(self.events.polled, self.name)
        return None if saved is None else Position.parse(saved)

    async def _save(self, changes: Sequence[Change], position: Position) -> None:
        await asyncio.to_thread(
            self.events.append_polled, self.name, changes, position=position.saved()
        )
        self._position = position
        self._saved_at = asyncio.get_running_loop().time()

    def _idle_save_due(self) -> bool:
        return asyncio.get_running_loop().time() - self._saved_at >= IDLE_SAVE

    @staticmethod
    def _thawed(position: Position) -> Position:
        """The position with its key as the driver's values, to bind."""
        return Position(position.base, position.version, tuple(thaw_all(position.key)))

    @staticmethod
    def _frozen(position: Position) -> Position:
        """The position with its key as JSON can keep it."""
        return Position(position.base, position.version, tuple(freeze_all(position.key)))

    async def _changes(self, rows: Sequence[Sequence[Any]]) -> list[Change]:
        raw_keys = [tuple(row[2:]) for row in rows]
        keys = orjson.loads(dumps(encode_rows(self.resource, self.resource.key, raw_keys)))
        operations = [str(row[1]).strip() for row in rows]
        wanted = [k for k, op in zip(keys, operations, strict=True) if op != "D"]
        found = await rows_by_key(self.resource.adapter, self.resource, wanted)
        current = {subject_of(self.resource, r): r for r in orjson.loads(dumps(found))}
        now, changes = utc_text(self.clock()), []
        for row, key, op in zip(rows, keys, operations, strict=True):
            subject = subject_of(self.resource, key)
            data = key if op == "D" else current.get(subject, key)
            changes.append(Change(
                id=self._id(int(row[0]), key), resource=self.name,
                type=TYPES.get(op, "bridgehead.row.updated"), subject=subject,
                partitionkey=f"{self.name}/{subject}", time=now, data=data,
            ))  # fmt: skip
        return changes

    def _id(self, version: int, key: dict[str, Any]) -> str:
        values = [key[c.name] for c in self.resource.key]
        basis = f"change_tracking\0{self.name}\0{version}\0".encode() + orjson.dumps(values)
        return hashlib.sha256(basis).hexdigest()[:32]
