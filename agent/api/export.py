"""Streaming exports: a resource's whole filtered result as NDJSON or CSV, in bounded memory.

Rows are read in keyset chunks (`WHERE (order) > (last row) ... LIMIT chunk`) inside one
snapshot transaction where the DBMS offers one, so memory holds one chunk whatever the
result's size, every driver streams (none buffers a whole result), and the rows form one
consistent state. The response body is an async generator: the HTTP front pulls the next
chunk only when the previous one was written, so a slow caller slows the reads, and a
caller that goes away stops them (the transaction is rolled back).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson

from agent.api.cursor import CursorCodec
from agent.api.filters import ListPlan, after, plan_list
from agent.api.message import ApiResponse
from agent.api.reads import cursor_values, encode_rows, page_select, start_after
from agent.catalog import Resource

NDJSON = "application/x-ndjson"
CSV = "text/csv"
CHUNK_ROWS = 2000
Items = list[dict[str, Any]]


def export_format(accept: str) -> str | None:
    """The streaming media type the caller asked for, or None for a JSON page."""
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media in wanted:
        if media in (NDJSON, CSV):
            return media
    return None


def ndjson_lines(items: Items, names: Sequence[str]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def _csv_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_lines(items: Items, names: Sequence[str]) -> bytes:
    """RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([_csv_text(item[n]) for n in names] for item in items)
    return out.getvalue().encode("utf-8")


def csv_header(names: Sequence[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(names)
    return out.getvalue().encode("utf-8")


ENCODERS: dict[str, Callable[[Items, Sequence[str]], bytes]] = {
    NDJSON: ndjson_lines,
    CSV: csv_lines,
}
CONTENT_TYPES = {NDJSON: NDJSON, CSV: "text/csv; charset=utf-8; header=present"}


def stream_rows(
    resource: Resource,
    query: Sequence[tuple[str, str]],
    cursors: CursorCodec,
    media: str,
    chunk: int = CHUNK_ROWS,
) -> ApiResponse:
    """A streaming response of every filtered row (up to max_rows), in the plan's order."""
    plan = plan_list(resource, query)
    conditions, more = start_after(resource, plan, cursors)
    response = ApiResponse(200, {"Content-Type": CONTENT_TYPES[media]})
    start = list(conditions) if more else None
    response.body = _chunks(resource, plan, start=start, media=media, chunk=chunk, into=response)
    return response


async def _chunks(
    resource: Resource,
    plan: ListPlan,
    *,
    start: list[Any] | None,
    media: str,
    chunk: int,
    into: ApiResponse,
) -> AsyncIterator[bytes]:
    """The encoded chunks; counts rows into `into.rows` for the audit log."""
    names = [c.name for c in plan.select]
    if media == CSV:
        yield csv_header(names)
    if start is None:
        return
    encode, dialect = ENCODERS[media], resource.adapter.dialect
    remaining = resource.config.max_rows
    conditions = start
    async with resource.adapter.transaction(snapshot=True) as tx:
        while remaining > 0:
            limit = min(chunk, remaining)
            select, fetch = page_select(resource, plan, conditions, limit)
            rendered = dialect.render_select(select)
            rows = await tx.fetch(rendered.sql, rendered.params, limit)
            items = encode_rows(resource, fetch, rows)
            if items:
                yield encode(items, names)
            into.rows += len(items)
            remaining -= len(items)
            if len(items) < limit:
                return
            last = cursor_values(resource, [items[-1][o.column] for o in plan.order], plan.order)
            beyond = after(plan.order, last)
            if beyond is None:
                return
            conditions = [*start, beyond]
