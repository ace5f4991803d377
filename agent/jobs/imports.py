"""An import run: records from a URL or from a resource of another source, applied to a
resource in chunks (`agent.api.apply`), checkpointed, with a dry run that writes nothing.

Rules (what a process killed at each step leaves):
- `atomic: false`: each chunk is one transaction; its checkpoint (the input position after
  the chunk's last record, the counts, the first rejects) is written after the commit. A kill
  before the commit loses nothing (the transaction rolls back, the chunk is read again); a
  kill between the commit and the checkpoint applies the chunk again on resume, where its
  rows are now `unchanged`: the table ends equal to the input either way.
- `atomic: true`: the whole input in one transaction, committed only if the rejects stay
  within `max_rejects`; a kill leaves the table as it was, and the run starts over.
- `mirror` deletes, after the whole input is applied, the rows within `scope` it did not
  hold, page by page (each page a transaction, its position checkpointed).
- More rejects than `max_rejects` fail the run (chunks already committed stay, and the
  report says how many).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

import orjson

from bridgehead.adapters.base import Transaction
from bridgehead.adapters.sql import OrderBy, Select
from bridgehead.agent.api.apply import Applier, ImportRefused, SeenKeys, Tally
from bridgehead.agent.api.filters import after
from bridgehead.agent.api.reads import encode_rows, text_columns
from bridgehead.agent.api.records import Position, Record, freeze_all, thaw_all
from bridgehead.agent.catalog import Resource
from bridgehead.agent.config.jobs import ImportConfig
from bridgehead.agent.jobs.feeds import UrlFeed
from bridgehead.agent.jobs.store import Checkpoint, JobState, JobStore
from bridgehead.agent.values import dumps, json_default
from bridgehead.common import failpoints

Sleep = Callable[[float], Awaitable[None]]


class _RolledBack(Exception):
    """Ends a dry run's (or a refused atomic run's) transaction without committing it."""


class QueryFeed:
    """The rows of a named query (of any source), as records; resumed by skipping the rows
    already taken (`agent.jobs.queries`)."""

    def __init__(
        self, batches: Callable[[int], AsyncIterator[list[dict[str, Any]]]], at: Position
    ) -> None:
        self.batches, self.at = batches, at

    async def records(self) -> AsyncIterator[Record]:
        async for batch in self.batches(self.at.line):
            for values in batch:
                self.at.line += 1
                self.at.offset = self.at.line
                yield Record(self.at.line, self.at.offset, values)


class ResourceFeed:
    """The rows of a resource (of any source), in key order, as records."""

    def __init__(self, resource: Resource, at: Position, chunk: int) -> None:
        self.resource, self.at, self.chunk = resource, at, chunk

    async def records(self) -> AsyncIterator[Record]:
        resource = self.resource
        order = tuple(OrderBy(c.name) for c in resource.key)
        while True:
            last = thaw_all(orjson.loads(self.at.validator)) if self.at.validator else None
            select = Select(
                resource.table.ref, tuple(c.name for c in resource.columns),
                where=after(order, last) if last else None, order=order, limit=self.chunk,
                as_text=text_columns(resource, resource.columns),
            )  # fmt: skip
            raw = await resource.adapter.select(select)
            for row, item in zip(raw, encode_rows(resource, resource.columns, raw), strict=True):
                self.at.line += 1
                self.at.offset = self.at.line
                index = [resource.columns.index(k) for k in resource.key]
                self.at.validator = orjson.dumps(freeze_all([row[i] for i in index])).decode()
                yield Record(self.at.line, self.at.offset, orjson.loads(dumps(item)))
            if len(raw) < self.chunk:
                return


async def run_import(
    config: ImportConfig,
    *,
    target: Resource,
    source: Resource | None,
    query: Callable[[int], AsyncIterator[list[dict[str, Any]]]] | None = None,
    store: JobStore,
    state: JobState,
    checkpoint: Checkpoint,
    sleep: Sleep = asyncio.sleep,
) -> dict[str, Any]:
    """Carry the run in `checkpoint` (new or resumed) to its end; its counts."""
    textual = config.from_.url is not None and config.from_.format == "csv"
    applier = Applier(target, config.mode, config.scope, textual=textual)
    saved = checkpoint.position or {}
    at = Position(**saved.get("feed", {}))
    feed: UrlFeed | ResourceFeed | QueryFeed
    if source is not None:
        feed = ResourceFeed(source, at, config.chunk_rows)
    elif query is not None:
        feed = QueryFeed(query, at)
    else:
        feed = UrlFeed(config.from_, at, sleep)
    tally = Tally.of(checkpoint.counts)
    seen = None
    if config.mode == "mirror":
        seen = await asyncio.to_thread(SeenKeys, store.folder / f"seen-{checkpoint.run}.db")
    run = _Run(config, applier, store=store, state=state, checkpoint=checkpoint, tally=tally,
               seen=seen, at=at)  # fmt: skip
    try:
        if config.atomic:
            await run.atomically(feed)
        else:
            if saved.get("phase") != "delete":
                await run.in_chunks(feed)
            if seen is not None:
                await run.delete_absent(saved.get("after"))
    except Exception:  # the run ends (failed): the next one reads its input afresh
        if seen is not None:
            await asyncio.to_thread(seen.drop)
        raise
    # A run stopped by the agent's shutdown keeps its keys: it resumes with them.
    if seen is not None:
        await asyncio.to_thread(seen.drop)
    return {**tally.counts(), "chunks": checkpoint.chunk, "checksum": checkpoint.checksum}


class _Run:
    def __init__(
        self, config: ImportConfig, applier: Applier, *, store: JobStore, state: JobState,
        checkpoint: Checkpoint, tally: Tally, seen: SeenKeys | None, at: Position,
    ) -> None:  # fmt: skip
        self.config, self.applier, self.store, self.state = config, applier, store, state
        self.checkpoint, self.tally, self.seen, self.at = checkpoint, tally, seen, at
        self.adapter = applier.resource.adapter

    def _take(self, record: Record, batch: list[tuple[Record, dict[str, Any]]]) -> None:
        self.tally.read += 1
        converted = self.applier.convert(record)
        if isinstance(converted, str):
            self.tally.reject(record.line, converted)
            if not self.config.atomic and self.tally.rejected > self.config.max_rejects:
                raise ImportRefused(self._too_many())
            return
        batch.append((record, converted))

    def _too_many(self) -> str:
        first = self.tally.rejects[0]
        return (
            f"{self.tally.rejected} rows rejected, more than max_rejects "
            f"({self.config.max_rejects}); the first: line {first['line']}: {first['reason']}"
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        """A transaction of the target's, rolled back at its end in a dry run."""
        with contextlib.suppress(_RolledBack):
            async with self.adapter.transaction() as tx:
                yield tx
                if self.checkpoint.dry_run:
                    raise _RolledBack

    async def in_chunks(self, feed: UrlFeed | ResourceFeed | QueryFeed) -> None:
        batch: list[tuple[Record, dict[str, Any]]] = []
        async for record in feed.records():
            self._take(record, batch)
            if len(batch) >= self.config.chunk_rows:
                await self._commit(batch)
                batch = []
        await self._commit(batch, final=True)

    async def _commit(
        self, batch: list[tuple[Record, dict[str, Any]]], final: bool = False
    ) -> None:
        if batch:
            async with self._transaction() as tx:
                await self._apply_in(tx, batch)
        if batch or final:
            phase = "delete" if final and self.seen is not None else "apply"
            await self._save({"feed": asdict(self.at), "phase": phase})
            failpoints.reach("import-chunk-applied")

    async def _save(self, position: dict[str, Any]) -> None:
        self.checkpoint.position = position
        self.checkpoint.counts = self.tally.counts()
        if not self.checkpoint.dry_run:
            await asyncio.to_thread(self.store.save, self.state)

    async def delete_absent(self, start: list[Any] | None) -> None:
        """Mirror's deletes, a page a transaction, each page's position checkpointed."""
        after_key = thaw_all(start) if start else None
        while True:
            async with self._transaction() as tx:
                after_key = await self._delete_page(tx, after_key)
            where = freeze_all(after_key) if after_key else None
            await self._save({"feed": asdict(self.at), "phase": "delete", "after": where})
            if after_key is None:
                return

    async def atomically(self, feed: UrlFeed | ResourceFeed | QueryFeed) -> None:
        async with self._transaction() as tx:
            batch: list[tuple[Record, dict[str, Any]]] = []
            async for record in feed.records():
                self._take(record, batch)
                if len(batch) >= self.config.chunk_rows:
                    await self._apply_in(tx, batch)
                    batch = []
            await self._apply_in(tx, batch)
            if self.tally.rejected > self.config.max_rejects:
                raise ImportRefused(self._too_many() + "; nothing was applied")
            if self.seen is not None:
                after_key = await self._delete_page(tx, None)
                while after_key is not None:
                    after_key = await self._delete_page(tx, after_key)

    async def _apply_in(self, tx: Transaction, batch: list[tuple[Record, dict[str, Any]]]) -> None:
        """One chunk written in `tx`, its keys remembered (mirror), its digest kept."""
        if not batch:
            return
        await self.applier.apply(tx, batch, self.tally)
        if self.seen is not None:
            keys = [self.applier.key_of(values) for _, values in batch]
            await asyncio.to_thread(self.seen.add, keys)
        self.checkpoint.digests.append(_digest(batch))
        self.checkpoint.chunk += 1

    async def _delete_page(self, tx: Transaction, after_key: list[Any] | None) -> list[Any] | None:
        """Delete one page of the target's rows (within scope) the input did not hold; where
        the next page starts, or None after the last."""
        assert self.seen is not None
        keys, after_key = await self.applier.page_of_keys(tx, after_key, self.config.chunk_rows)
        gone = await asyncio.to_thread(self.seen.missing, keys) if keys else []
        await self.applier.delete(tx, gone)
        self.tally.deleted += len(gone)
        return after_key


def _digest(batch: list[tuple[Record, dict[str, Any]]]) -> str:
    data = orjson.dumps([values for _, values in batch], default=json_default)
    return hashlib.sha256(data).hexdigest()
