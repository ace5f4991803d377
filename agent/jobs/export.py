"""An export run: a resource's rows, in chunks, to a sink; incremental runs send only the rows
changed since the last row the sink acknowledged.

Rules (each closes a data-loss bug batch tools are known for):
- Rows are walked in keyset order (COLUMN, key...), never by OFFSET and never by COLUMN
  alone, so rows that share one COLUMN value (a bulk update's single timestamp) are never
  split, skipped or sent twice at a chunk boundary.
- The run's upper bound, the run start minus `lag`, is frozen when the run starts and kept
  in its checkpoint: a row written during the run, or committed late by a transaction that
  stamped it earlier, is sent by this run or the next, never passed over.
- The position (and with it the watermark) moves only after the sink acknowledged the chunk
  and the checkpoint is written; a run that fails keeps the position of its last
  acknowledged chunk, and the next run goes on from there, so every row is sent once. A run
  killed between an acknowledgement and its checkpoint sends that chunk again under the same
  run and chunk number (the same Idempotency-Key, the same file name).
- Rows whose COLUMN is NULL have no place in the walk and are not exported incrementally.
- A dry run reads and counts, sends nothing and moves nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from bridgehead.agent.api.export import csv_header, csv_lines, csv_lines_raw, ndjson_lines
from bridgehead.agent.api.reads import encode_rows
from bridgehead.agent.api.records import freeze, freeze_all, thaw, thaw_all
from bridgehead.agent.api.walk import Walk, WalkRefused
from bridgehead.agent.catalog import Resource
from bridgehead.agent.config.jobs import ExportConfig
from bridgehead.agent.jobs.sinks import Sink
from bridgehead.agent.jobs.store import Checkpoint, JobState, JobStore
from bridgehead.common import failpoints

Clock = Callable[[], dt.datetime]


class ExportRefused(Exception):
    """The export cannot run as configured; the message says what to change."""


def walk_for(resource: Resource, export: ExportConfig) -> Walk:
    try:
        return Walk.of(resource, export.incremental)
    except WalkRefused as exc:
        raise ExportRefused(str(exc)) from None


def encode_chunk(resource: Resource, rows: Sequence[tuple[Any, ...]], media: str) -> bytes:
    columns = resource.columns
    items = encode_rows(resource, columns, rows)
    names = [c.name for c in columns]
    if media == "csv":
        lines = csv_lines if resource.config.csv_formulas == "escape" else csv_lines_raw
        return csv_header(names) + lines(items, names)
    return ndjson_lines(items, names)


async def run_export(
    export: ExportConfig,
    *,
    resource: Resource,
    store: JobStore,
    state: JobState,
    sink: Sink,
    checkpoint: Checkpoint,
    clock: Clock,
) -> dict[str, Any]:
    """Carry the run in `checkpoint` (new, or resumed) to its end; the counts and checksum
    for its report. Raises what stopped it, with the checkpoint at its last acknowledged
    chunk (and the watermark with it)."""
    walk = walk_for(resource, export)
    if checkpoint.chunk == 0 and checkpoint.bound is None and walk.incremental is not None:
        checkpoint.bound = freeze(await walk.bound(clock(), export.lag))
        if not checkpoint.dry_run:
            await asyncio.to_thread(store.save, state)
    bound = thaw(checkpoint.bound)
    position = thaw_all(checkpoint.position) if checkpoint.position is not None else (
        thaw_all(state.watermark) if walk.incremental is not None and state.watermark else None
    )  # fmt: skip
    size = export.to.chunk_rows
    counts = checkpoint.counts
    counts.setdefault("read", 0)
    nothing = walk.incremental is not None and bound is None  # no counter value yet
    while not nothing:
        rows = await resource.adapter.select(walk.select(position, bound, size))
        if not rows:
            break
        body = encode_chunk(resource, rows, export.to.format)
        counts["read"] += len(rows)
        position = walk.position(rows[-1])
        if not checkpoint.dry_run:
            await sink.send(checkpoint.run, checkpoint.chunk, body)
            failpoints.reach("export-chunk-sent")
            checkpoint.chunk += 1
            checkpoint.position = freeze_all(position)
            checkpoint.digests.append(hashlib.sha256(body).hexdigest())
            counts["exported"] = counts.get("exported", 0) + len(rows)
            if walk.incremental is not None:
                state.watermark = checkpoint.position
            await asyncio.to_thread(store.save, state)
            failpoints.reach("export-checkpointed")
        if len(rows) < size:
            break
    return {
        "read": counts["read"], "exported": counts.get("exported", 0),
        "chunks": checkpoint.chunk,
        "checksum": checkpoint.checksum,
    }  # fmt: skip


async def run_query_export(
    export: ExportConfig,
    *,
    batches: Callable[[int], AsyncIterator[list[dict[str, Any]]]],
    defuse: bool,
    store: JobStore,
    state: JobState,
    sink: Sink,
    checkpoint: Checkpoint,
) -> dict[str, Any]:
    """A named query's rows, all of them, in chunks to the sink; `batches(skip)` reads the
    query afresh after its first `skip` rows (a resumed run skips what the sink took)."""
    size, counts = export.to.chunk_rows, checkpoint.counts
    counts.setdefault("read", counts.get("exported", 0))
    pending: list[dict[str, Any]] = []

    async def send(rows: list[dict[str, Any]]) -> None:
        names = list(rows[0])
        if export.to.format == "csv":
            lines = csv_lines if defuse else csv_lines_raw
            body = csv_header(names) + lines(rows, names)
        else:
            body = ndjson_lines(rows, names)
        if checkpoint.dry_run:
            return
        await sink.send(checkpoint.run, checkpoint.chunk, body)
        failpoints.reach("export-chunk-sent")
        checkpoint.chunk += 1
        checkpoint.digests.append(hashlib.sha256(body).hexdigest())
        counts["exported"] = counts.get("exported", 0) + len(rows)
        await asyncio.to_thread(store.save, state)
        failpoints.reach("export-checkpointed")

    async for batch in batches(counts.get("exported", 0)):
        counts["read"] += len(batch)
        pending += batch
        while len(pending) >= size:
            await send(pending[:size])
            pending = pending[size:]
    if pending:
        await send(pending)
    return {
        "read": counts["read"], "exported": counts.get("exported", 0),
        "chunks": checkpoint.chunk,
        "checksum": checkpoint.checksum,
    }  # fmt: skip
