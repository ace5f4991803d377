"""Trigger capture: one source's outbox (`agent.events.ddl`) read into the event log.

Rules (what a process killed at each step leaves):
- A batch of outbox rows is read in `seq` order, turned into events, appended to the log
  (durably), and only then deleted from the outbox: those rows, by their `seq` (a `seq` is
  handed out when the row is written, not when it commits, so a lower one may appear later).
  Killed before the append: the rows are read again. Killed after it, before the delete:
  they are read again and appended again, and skipped there, because an event's id is
  derived from its outbox row (source, seq, time, operation, key). Nothing is lost or
  doubled.
- `data` is the row as the API serves it, read when the change is captured (so several
  changes to one row between two reads each carry its state at that read), or the key alone
  for a delete, or for a row already deleted again when it is read.
- An outbox row of a resource this config does not serve (triggers of an older config) is
  dropped with a warning, once per resource name.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.sql import Delete, In, OrderBy, Select
from bridgehead.adapters.types import TableRef
from bridgehead.agent.api.reads import rows_by_key
from bridgehead.agent.catalog import Resource
from bridgehead.agent.events.log import Change, EventLog
from bridgehead.agent.values import dumps
from bridgehead.common import failpoints

log = logging.getLogger("bridgehead.events")
BATCH = 1000
OUTBOX_COLUMNS = ("seq", "resource", "op", "row_key", "changed_at")
TYPES = {"I": "bridgehead.row.created", "U": "bridgehead.row.updated",
         "D": "bridgehead.row.deleted"}  # fmt: skip


def subject_of(resource: Resource, key: dict[str, Any]) -> str:
    """The row's key as the API's item URL takes it: one value, or several as a CSV line."""
    values = ["" if key.get(c.name) is None else str(key[c.name]) for c in resource.key]
    if len(values) == 1:
        return values[0]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def utc_text(value: Any) -> str:
    """An event's `time`: a datetime (naive meaning UTC) as ISO 8601 in UTC with `Z`; text
    as it came."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value)


class OutboxReader:
    def __init__(
        self,
        source: str,
        adapter: Adapter,
        *,
        outbox: TableRef,
        resources: Sequence[Resource],
        events: EventLog,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.source, self.adapter, self.outbox, self.events = source, adapter, outbox, events
        self.resources = {r.name: r for r in resources}
        self.notify = notify
        self._unknown: set[str] = set()

    async def once(self) -> int:
        """Capture one batch; how many outbox rows it took (0: the outbox is empty)."""
        select = Select(self.outbox, OUTBOX_COLUMNS, order=(OrderBy("seq"),), limit=BATCH)
        rows = await self.adapter.select(select)
        if not rows:
            return 0
        changes = await self._changes(rows)
        await asyncio.to_thread(self.events.append, changes)
        failpoints.reach("events-appended")
        # exactly the rows read: a lower seq whose transaction commits later is read next time
        async with self.adapter.transaction() as tx:
            await tx.delete(Delete(self.outbox, In("seq", tuple(row[0] for row in rows))))
        if changes:
            self.notify()
        return len(rows)

    async def _changes(self, rows: Sequence[Sequence[Any]]) -> list[Change]:
        parsed = []
        for seq, name, op, row_key, changed_at in rows:
            resource = self.resources.get(str(name))
            if resource is None:
                if name not in self._unknown:
                    self._unknown.add(str(name))
                    log.warning(
                        "events: the outbox of %s holds changes of %r, which this config does "
                        "not serve; they are dropped", self.source, name,
                    )  # fmt: skip
                continue
            key = orjson.loads(row_key)
            parsed.append((seq, resource, str(op).strip(), key, changed_at, row_key))
        current = await self._current([(r, k) for _, r, op, k, _, _ in parsed if op != "D"])
        changes = []
        for seq, resource, op, key, changed_at, row_key in parsed:
            subject = subject_of(resource, key)
            data = key if op == "D" else current.get((resource.name, subject), key)
            basis = f"{self.source}\0{seq}\0{changed_at}\0{op}\0{row_key}".encode()
            changes.append(Change(
                id=hashlib.sha256(basis).hexdigest()[:32], resource=resource.name,
                type=TYPES.get(op, "bridgehead.row.updated"), subject=subject,
                partitionkey=f"{resource.name}/{subject}", time=utc_text(changed_at), data=data,
            ))  # fmt: skip
        return changes

    async def _current(
        self, wanted: Sequence[tuple[Resource, dict[str, Any]]]
    ) -> dict[tuple[str, str], Any]:
        """The rows as served now, by (resource, subject), for the changes' keys."""
        found: dict[tuple[str, str], Any] = {}
        by_resource: dict[str, tuple[Resource, list[dict[str, Any]]]] = {}
        for resource, key in wanted:
            by_resource.setdefault(resource.name, (resource, []))[1].append(key)
        for resource, keys in by_resource.values():
            rows = await rows_by_key(resource.adapter, resource, keys)
            for row in orjson.loads(dumps(rows)):
                found[(resource.name, subject_of(resource, row))] = row
        return found
