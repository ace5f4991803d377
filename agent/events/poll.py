"""Poll capture: change events from a `watermark` column (an updated-at or a row version),
with no DDL in the legacy database.

Rules:
- Rows are walked by keyset (watermark, key) after the last position taken, up to a bound
  frozen per poll (the start minus `lag`: `agent.api.walk`), so rows that share a watermark
  are neither split nor repeated, and a transaction that commits late, within `lag`, is
  not passed over.
- The events, the new position and the keys seen are written to the event log in one
  transaction: a poll killed at any point repeats nothing and skips nothing.
- A key seen before is `updated`, a new one `created`; `deletes: reconcile` compares the
  keys seen with the table's every `every` and emits `deleted` for those gone.

What this mode cannot see, and when (the trigger capture has none of these limits):
- several changes to a row between two polls are one event, with the row as it is then;
- a delete is seen only at the next reconciliation, and a row deleted and inserted again
  in between looks like an update;
- a change whose transaction stays open longer than `lag` after it set the watermark may
  be passed over, and a change that does not move the watermark (an application that does
  not maintain it) is never seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from bridgehead.agent.api.reads import encode_rows, rows_by_key
from bridgehead.agent.api.records import freeze_all, thaw_all
from bridgehead.agent.api.walk import Walk
from bridgehead.agent.catalog import Resource
from bridgehead.agent.config.model import EventsConfig
from bridgehead.agent.events.capture import subject_of, utc_text
from bridgehead.agent.events.log import Change, EventLog
from bridgehead.agent.values import dumps

BATCH = 1000
Clock = Callable[[], dt.datetime]


class WatermarkPoller:
    def __init__(
        self,
        resource: Resource,
        settings: EventsConfig,
        events: EventLog,
        *,
        notify: Callable[[], None],
        clock: Clock,
    ) -> None:
        self.resource, self.settings, self.events = resource, settings, events
        self.notify, self.clock = notify, clock
        self.walk = Walk.of(resource, settings.watermark)
        self.name = resource.name
        self._reconcile_at = asyncio.get_running_loop().time() + settings.every

    async def step(self) -> int:
        """One poll, and the reconciliation when it is due (`deletes: reconcile`, every
        `every`); how many rows the poll read."""
        taken = await self.once()
        now = asyncio.get_running_loop().time()
        if self.settings.deletes == "reconcile" and now >= self._reconcile_at:
            await self.reconcile()
            self._reconcile_at = now + self.settings.every
        return taken

    def _key(self, item: dict[str, Any]) -> str:
        return orjson.dumps([item[c.name] for c in self.resource.key]).decode()

    async def once(self) -> int:
        """Capture one batch of changed rows; how many rows it read."""
        saved = await asyncio.to_thread(self.events.polled, self.name)
        position = thaw_all(saved) if saved else None
        bound = await self.walk.bound(self.clock(), self.settings.lag)
        if bound is None:
            return 0
        rows = await self.resource.adapter.select(self.walk.select(position, bound, BATCH))
        if not rows:
            return 0
        items = orjson.loads(dumps(encode_rows(self.resource, self.resource.columns, rows)))
        keys = [self._key(item) for item in items]
        known = await asyncio.to_thread(self.events.known_among, self.name, keys)
        changes, now = [], self.clock()
        for raw, item, key in zip(rows, items, keys, strict=True):
            mark = orjson.dumps(freeze_all(self.walk.position(raw))).decode()
            kind = "updated" if key in known else "created"
            known.add(key)
            subject = subject_of(self.resource, item)
            changes.append(self._change(f"{key}\0{mark}", kind, subject, item, now))
        last = freeze_all(self.walk.position(rows[-1]))
        await asyncio.to_thread(
            self.events.append_polled, self.name, changes, position=last, seen=keys
        )
        self.notify()
        return len(rows)

    async def reconcile(self) -> int:
        """Emit `deleted` for every key seen that the table no longer holds; how many."""
        after, gone_total = "", 0
        names = [c.name for c in self.resource.key]
        while page := await asyncio.to_thread(self.events.known_page, self.name, after, BATCH):
            present = await self._present([orjson.loads(k) for k in page], names)
            gone = [k for k in page if k not in present]
            now = self.clock()
            changes = []
            for key in gone:
                values = dict(zip(names, orjson.loads(key), strict=True))
                subject = subject_of(self.resource, values)
                changes.append(self._change(f"{key}\0{now.isoformat()}", "deleted", subject,
                                            values, now))  # fmt: skip
            if gone:
                await asyncio.to_thread(self.events.append_polled, self.name, changes, gone=gone)
                self.notify()
            gone_total += len(gone)
            after = page[-1]
        return gone_total

    async def _present(self, keys: list[list[Any]], names: list[str]) -> set[str]:
        wanted = [dict(zip(names, key, strict=True)) for key in keys]
        rows = await rows_by_key(self.resource.adapter, self.resource, wanted, self.resource.key)
        return {self._key(item) for item in orjson.loads(dumps(rows))}

    def _change(self, basis: str, kind: str, subject: str, data: Any, now: dt.datetime) -> Change:
        digest = hashlib.sha256(f"poll\0{self.name}\0{kind}\0{basis}".encode()).hexdigest()
        return Change(
            id=digest[:32], resource=self.name, type=f"bridgehead.row.{kind}", subject=subject,
            partitionkey=f"{self.name}/{subject}",
            time=utc_text(now), data=data,
        )  # fmt: skip
