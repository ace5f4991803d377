"""`POST /v1/{resource}` with an NDJSON or CSV body: a bulk load of any length, read as it
arrives (through the tunnel too) and applied by the import machinery (`agent.api.apply`).

Rules:
- Without `Prefer: resolution=merge-duplicates` rows are inserted and a different existing
  row is a reject; with it (PostgREST's convention) rows are upserted. Either way a row equal
  to the stored one is `unchanged` and not written.
- The whole load is one transaction: any rejected row, more than `limits.max_bulk_rows`
  rows, a body cut off or stalled, and nothing of it is written. The answer holds the
  counts (read, inserted, updated, unchanged), or the problem names the first rejects by
  line.
- Memory stays bounded: records are cut from the body as it comes and applied a chunk at a
  time; the transaction, not the agent, holds what is written so far.
- An `Idempotency-Key` is refused: the body cannot be compared before it is read, and a
  merge-duplicates load sent twice writes nothing the second time anyway.
"""

from __future__ import annotations

from typing import Any

from bridgehead.agent.api.apply import Applier, ImportRefused, Mode, Tally
from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.api.records import (
    Position,
    Record,
    RecordSplitter,
    RecordTooLong,
    record_format,
)
from bridgehead.agent.catalog import Resource
from bridgehead.agent.errors import MethodNotAllowed, PayloadTooLarge
from bridgehead.agent.values import dumps
from bridgehead.common.errors import BadRequest

CHUNK = 1000
SHOWN_REJECTS = 5


async def load(resource: Resource, request: ApiRequest, max_rows: int) -> ApiResponse:
    fmt, stream = record_format(request.headers.get("content-type", "")), request.stream
    assert fmt is not None
    assert stream is not None
    if "idempotency-key" in request.headers:
        raise BadRequest(
            "a bulk load takes no Idempotency-Key; send it with Prefer: "
            "resolution=merge-duplicates, and a repeat writes nothing"
        )
    merge = "resolution=merge-duplicates" in request.headers.get("prefer", "").replace(" ", "")
    mode: Mode = "upsert" if merge else "insert"
    try:
        applier = Applier(resource, mode, textual=fmt == "csv")
    except ImportRefused as exc:
        raise MethodNotAllowed(str(exc), headers={"Allow": "GET"}) from None
    splitter, tally = RecordSplitter(fmt, Position()), Tally()
    async with resource.adapter.transaction() as tx:
        batch: list[tuple[Record, dict[str, Any]]] = []
        try:
            async for piece in stream:
                for record in splitter.feed(piece):
                    _take(applier, record, batch, tally, max_rows)
                    if len(batch) >= CHUNK:
                        await applier.apply(tx, batch, tally)
                        batch = []
            for record in splitter.end():
                _take(applier, record, batch, tally, max_rows)
        except RecordTooLong as exc:
            raise BadRequest(f"{exc}; nothing was loaded") from None
        await applier.apply(tx, batch, tally)
        if tally.rejected:
            raise BadRequest(_rejected(tally))
    counts = {k: getattr(tally, k) for k in ("read", "inserted", "updated", "unchanged")}
    response = ApiResponse(200, {"Content-Type": "application/json"}, dumps(counts))
    response.rows = tally.inserted + tally.updated
    return response


def _take(
    applier: Applier,
    record: Record,
    batch: list[tuple[Record, dict[str, Any]]],
    tally: Tally,
    max_rows: int,
) -> None:
    tally.read += 1
    if tally.read > max_rows:
        raise PayloadTooLarge(
            f"the load holds more than limits.max_bulk_rows ({max_rows}) rows; nothing was "
            "loaded: send it in several loads"
        )
    converted = applier.convert(record)
    if isinstance(converted, str):
        tally.reject(record.line, converted)
    else:
        batch.append((record, converted))


def _rejected(tally: Tally) -> str:
    shown = "; ".join(f"line {r['line']}: {r['reason']}" for r in tally.rejects[:SHOWN_REJECTS])
    more = f" (and {tally.rejected - SHOWN_REJECTS} more)" if tally.rejected > SHOWN_REJECTS else ""
    return f"{tally.rejected} rows rejected, nothing was loaded: {shown}{more}"
