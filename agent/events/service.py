"""The agent's change-event service: the event log, one outbox reader per source whose
resources capture by triggers, one poller per resource captured by polling, one Change
Tracking reader per resource captured so, retention, and what `/v1/events` asks of them.

Rules:
- Each reader captures every `events.interval`, and at once again while it finds a full
  batch; a failing source is logged (once per distinct failure) and tried again next time.
- Readers of new events wait on one condition the readers notify, so a stream answers a
  change within a capture interval, without polling the log.
- Retention runs every minute (`events.retention`: age and size).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridgehead.agent.api.events import Ack
from bridgehead.agent.api.walk import WalkRefused
from bridgehead.agent.catalog import Catalog, Resource
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.errors import Stopping
from bridgehead.agent.events.capture import BATCH, OutboxReader
from bridgehead.agent.events.ddl import outbox_ref
from bridgehead.agent.events.log import DeadLetter, Event, EventLog
from bridgehead.agent.events.poll import WatermarkPoller
from bridgehead.agent.events.tracked import ChangeTrackingReader

log = logging.getLogger("bridgehead.events")
TRIM_EVERY = 60.0


class Events:
    def __init__(
        self,
        config: AgentConfig,
        catalog: Callable[[], Catalog],
        state_dir: Path,
        source: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config, self.catalog, self.clock = config, catalog, clock
        self.source = source
        """`bridgehead://agent/ID`: the CloudEvents source, before `/resources/NAME`."""
        self.path = state_dir / "events.db"
        self.log: EventLog | None = None
        self.captured = [n for n, r in config.resources.items() if r.events is not None]
        self._changed = asyncio.Condition()
        self.stopping = False
        """Set by `stop`: streams of events end."""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.log = await asyncio.to_thread(EventLog, self.path)
        catalog = self.catalog()
        by_source: dict[str, list[Resource]] = {}
        for name in self.captured:
            resource = await catalog.get(name)
            settings = self.config.resources[name].events
            if resource is None or settings is None:
                continue
            if settings.capture == "triggers":
                by_source.setdefault(resource.config.source, []).append(resource)
                continue
            if settings.capture == "change_tracking":
                tracker = ChangeTrackingReader(resource, self.log, notify=self._wake_readers,
                                               clock=self.clock)  # fmt: skip
                self._tasks.append(asyncio.create_task(self._keep(f"change tracking {name}",
                                                                  tracker.once)))  # fmt: skip
                continue
            try:
                poller = WatermarkPoller(resource, settings, self.log, notify=self._wake_readers,
                                         clock=self.clock)  # fmt: skip
            except WalkRefused as exc:
                log.error("events: resources.%s cannot be polled: %s", name, exc)
                continue
            self._tasks.append(asyncio.create_task(self._keep(f"polling {name}", poller.step)))
        for source, resources in by_source.items():
            outbox = outbox_ref(resources[0].table.ref)
            reader = OutboxReader(source, resources[0].adapter, outbox=outbox,
                                  resources=resources, events=self.log,
                                  notify=self._wake_readers)  # fmt: skip
            capture = self._keep(f"capture from {source}", reader.once)
            self._tasks.append(asyncio.create_task(capture))
        self._tasks.append(asyncio.create_task(self._trim()))

    async def stop(self) -> None:
        """Stop capturing and end the streams of events (their readers resume elsewhere or
        after the restart, from the sequence they reached); the log stays open for the
        requests still being answered, until `close`."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._notify()

    async def close(self) -> None:
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
            self.log = None

    def _stopped(self) -> bool:
        return self.stopping

    def _open(self) -> EventLog:
        if self.log is None:
            raise Stopping("the agent is stopping, and its event log is closed; retry once it "
                           "is back", headers={"Retry-After": "5"})  # fmt: skip
        return self.log

    def _wake_readers(self) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _keep(self, what: str, step: Callable[[], Awaitable[int]]) -> None:
        """Run `step` every interval, at once again while it takes a full batch; a failure
        (the source down, the outbox not installed, a column gone) is logged once until it
        changes, and tried again."""
        interval, last_error = self.config.events.interval, ""
        while True:
            taken = 0
            try:
                taken = await step()
                last_error = ""
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                if why != last_error:
                    log.warning("events: %s failed: %s; trying again every %g s", what, why,
                                interval)  # fmt: skip
                    last_error = why
            if taken < BATCH:
                await asyncio.sleep(interval)

    async def _trim(self) -> None:
        retention = self.config.events.retention
        while True:
            if self.log is not None:
                dropped = await asyncio.to_thread(
                    self.log.trim, self.clock(), timedelta(seconds=retention.age),
                    retention.max_bytes,
                )  # fmt: skip
                if dropped:
                    log.info("events: retention dropped %d old events", dropped)
            await asyncio.sleep(TRIM_EVERY)

    # -- what /v1/events asks -------------------------------------------------------------------

    async def read(
        self, after: int, limit: int, resources: list[str], types: list[str] | None
    ) -> list[Event]:
        return await asyncio.to_thread(self._open().read, after, limit, resources, types)

    async def wait(self, after: int, within: float) -> None:
        """Return when an event past `after` may be in the log, or after `within` seconds."""
        if self.stopping or await asyncio.to_thread(self._open().last_seq) > after:
            return
        async with self._changed:
            if self._stopped():  # checked under the condition, so stop's notify is not missed
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), within)

    async def position(self, consumer: str) -> int:
        return await asyncio.to_thread(self._open().position, consumer)

    async def commit(self, consumer: str, upto: int, ack: Ack) -> int:
        at = self.clock().isoformat()
        dead = [DeadLetter(d["seq"], d["id"], d["reason"], at) for d in ack.dead]
        return await asyncio.to_thread(
            self._open().commit, consumer, upto, self.clock(), dead=dead, report=ack.report
        )

    async def seq_of(self, ids: list[str]) -> dict[str, int]:
        return await asyncio.to_thread(self._open().seq_of, ids)

    async def rewind(self, consumer: str, to: int) -> int:
        return await asyncio.to_thread(self._open().rewind, consumer, to, self.clock())

    async def consumer(self, name: str, dead_letters: int = 100, after: int = 0) -> dict[str, Any]:
        """NAME's state as `GET /v1/events/consumers/NAME` shows it."""
        return await asyncio.to_thread(consumer_state, self._open(), name, dead_letters, after)


def consumer_state(
    log: EventLog, name: str, dead_letters: int = 100, after: int = 0
) -> dict[str, Any]:
    """A consumer's position, backlog, oldest event not processed, report and dead letters
    (an unknown name is a consumer at 0 that has processed nothing)."""
    kept = log.consumer(name)
    position = kept.position if kept is not None else 0
    last = log.last_seq()
    return {
        "consumer": name, "position": position, "last_seq": last,
        "backlog": max(0, last - max(position, log.first_seq() - 1)),
        "oldest_unprocessed": log.time_after(position),
        "updated": kept.updated if kept is not None else None,
        "report": kept.report if kept is not None else {},
        "first_seq": log.first_seq(), "dead_letter_count": kept.dead_letters if kept else 0,
        "dead_letters": [vars(d) for d in log.dead_letters(name, dead_letters, after)],
    }  # fmt: skip
