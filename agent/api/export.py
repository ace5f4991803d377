"""Streaming exports: a resource's whole filtered result as NDJSON or CSV, in bounded memory.

Rows are read in keyset chunks (`WHERE (order) > (last row) ... LIMIT chunk`) inside one
snapshot transaction where the DBMS offers one, so memory holds one chunk whatever the
result's size, every driver streams (none buffers a whole result), and the rows form one
consistent state. The response body is an async generator: the HTTP front pulls the next
chunk only when the previous one was written, so a slow caller slows the reads, and a
caller that goes away stops them (the transaction is rolled back).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

from bridgehead.adapters.base import Row, Transaction
from bridgehead.adapters.types import Column, Kind
from bridgehead.agent.api.cursor import CursorCodec
from bridgehead.agent.api.filters import ListPlan, after, plan_list
from bridgehead.agent.api.message import ApiResponse
from bridgehead.agent.api.reads import (
    cursor_values,
    encode_rows,
    page_select,
    position,
    start_after,
)
from bridgehead.agent.catalog import Resource
from bridgehead.agent.errors import NotAcceptable
from bridgehead.agent.values import json_default, text
from bridgehead.common.problem import JSON, NDJSON

CSV = "text/csv"
SERVED = (JSON, NDJSON, CSV)
CHUNK_ROWS = 5000
Items = list[dict[str, Any]]


def export_format(accept: str) -> str | None:
    """The streaming media type the caller prefers, or None for a JSON page.

    `Accept` is read as RFC 9110 says: each type's weight is the `q` of the most specific
    range naming it (`q=0`: not acceptable); the highest weight wins, then the more specific
    and earlier range, then JSON. No acceptable type is a 406; no `Accept` means JSON.
    """
    if not accept.strip():
        return None
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    weights = {media: _weight(ranges, media) for media in SERVED}
    chosen = max(SERVED, key=lambda media: weights[media])  # the first of equals: JSON
    if weights[chosen][0] <= 0:
        raise NotAcceptable(
            "none of the types in Accept can be served here; send Accept: "
            f"{', '.join(SERVED)} (or */*, or no Accept for JSON)"
        )
    return None if chosen == JSON else chosen


def _weight(ranges: list[tuple[str, float]], media: str) -> tuple[float, int, int]:
    """(q, specificity, earliness) of the most specific range naming `media`; q 0 if none."""
    matches = [
        (spec, -i, q)
        for i, (pattern, q) in enumerate(ranges)
        if (spec := _match(pattern, media)) >= 0
    ]
    if not matches:
        return (0.0, 0, 0)
    spec, position, q = max(matches)
    return (q, spec, position)


def _media_range(part: str) -> tuple[str, float]:
    media, *params = (piece.strip() for piece in part.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = min(max(float(value), 0.0), 1.0)
            except ValueError:
                q = 1.0
    return media.lower(), q


def _match(pattern: str, media: str) -> int:
    """How specifically `pattern` names `media`: 2 exactly, 1 `type/*`, 0 `*/*`, -1 not."""
    if pattern == media:
        return 2
    if pattern == media.split("/", maxsplit=1)[0] + "/*":
        return 1
    return 0 if pattern in ("*/*", "*") else -1


def ndjson_lines(
    items: Items, names: Sequence[str], naive_utc: bool = False, *, consume: bool = False
) -> bytes:
    """One JSON object per line. The chunk is written by one orjson call (a call per item and
    orjson's `default` per DECIMAL cost some 8 times as much): DECIMAL and binary values are
    turned into their JSON text first, then the array's separators `},{"first key":` become
    line breaks. That is exact where every value is a scalar, so that no such separator can
    stand anywhere else (inside a string its quotes are escaped); the count of separators
    checks it, and any other chunk is written an item at a time. `consume`: the items are
    not used after, so their values may be replaced where they are."""
    option = orjson.OPT_NAIVE_UTC if naive_utc else 0
    if len(items) > 1 and names:
        key = orjson.dumps(names[0])
        try:
            whole = orjson.dumps(_json_native(items, names, consume), option=option)
        except TypeError:  # a value of a kind orjson does not write (a column of mixed kinds)
            whole = b""
        separator = b"},{" + key + b":"
        if whole and whole.count(separator) == len(items) - 1:
            return whole[1:-1].replace(separator, b"}\n{" + key + b":") + b"\n"
    option |= orjson.OPT_APPEND_NEWLINE
    return b"".join([orjson.dumps(item, default=json_default, option=option) for item in items])


_NOT_NATIVE = (Decimal, bytes, bytearray, memoryview)


def _json_native(items: Items, names: Sequence[str], consume: bool) -> Items:
    """`items` with the DECIMAL and binary values of each column whose first value (not
    NULL) is one turned into their JSON text (as `json_default`, which refuses any other
    kind: TypeError); the items given are left as they are unless `consume`."""
    firsts = (next((v for item in items if (v := item.get(n)) is not None), None) for n in names)
    columns = [n for n, value in zip(names, firsts, strict=True) if isinstance(value, _NOT_NATIVE)]
    if not columns:
        return items
    out = []
    for given in items:
        item = given if consume else given.copy()
        for name in columns:
            value = item[name]
            if value.__class__ is Decimal:
                item[name] = format(value, "f")  # json_default's own, without its dispatch
            elif value is not None:
                item[name] = json_default(value)
        out.append(item)
    return out


def utc_shortcut(resource: Resource, columns: Sequence[Column]) -> frozenset[str]:
    """Columns whose naive-UTC datetimes NDJSON can write as UTC directly, skipping a decode
    per value; empty unless every naive datetime among `columns` means UTC."""
    naive_utc = resource.adapter.naive_utc_kinds
    zoned = frozenset(c.name for c in columns if c.type.kind in naive_utc)
    naive = any(c.type.kind is Kind.TIMESTAMP for c in columns)
    return frozenset() if naive else zoned


def csv_lines(items: Items, names: Sequence[str]) -> bytes:
    """RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break.
    NULL is an empty field and an empty string a quoted one (`""`), so the two stay apart.
    A field a spreadsheet would run as a formula is defused (`defused`)."""
    return _csv(items, names, defuse=True)


def csv_lines_raw(items: Items, names: Sequence[str]) -> bytes:
    """As `csv_lines`, with every field as stored (`csv_formulas: allow`, for programs)."""
    return _csv(items, names, defuse=False)


def _csv(items: Items, names: Sequence[str], *, defuse: bool) -> bytes:
    lines = [",".join([_csv_field(item[n], defuse) for n in names]) for item in items]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8") if lines else b""


def _csv_field(value: Any, defuse: bool = True) -> str:
    if value is None:
        return ""
    field = text(value)
    if defuse and not isinstance(value, _NUMBERS):
        field = defused(field)
    if not field or _CSV_QUOTED.search(field):
        return '"' + field.replace('"', '""') + '"'
    return field


def defused(field: str) -> str:
    """OWASP's CSV-injection rule: a field starting with =, +, -, @, tab or CR gets a leading
    single quote, so a spreadsheet shows it as text instead of running it; a field that is
    wholly a number (`-12.30`, `-Infinity`) is no formula and stays as it is."""
    if field[:1] in _FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(field):
        return "'" + field
    return field


_CSV_QUOTED = re.compile(r'[",\r\n]')
_FORMULA_STARTS = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)")
_NUMBERS = (int, float, Decimal)


def csv_header(names: Sequence[str]) -> bytes:
    return csv_lines_raw([{n: n for n in names}], names)


Encode = Callable[[Items, Sequence[str]], bytes]
ENCODERS: dict[str, Encode] = {NDJSON: ndjson_lines, CSV: csv_lines}


def encoder_for(media: str, formulas: str) -> Encode:
    """The chunk encoder for a stream; `formulas: allow` writes CSV fields as stored."""
    return csv_lines_raw if media == CSV and formulas == "allow" else ENCODERS[media]


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
    """The encoded chunks; counts rows into `into.rows` for the audit log. The first yield
    comes after the first chunk is read (with the CSV header), so a failure before it is
    still a problem response, and `into` has its X-Truncated header by then."""
    names = [c.name for c in plan.select]
    header = csv_header(names) if media == CSV else b""
    if start is None:
        if header:
            yield header
        return
    encode = encoder_for(media, resource.config.csv_formulas)
    skip = utc_shortcut(resource, plan.select) if media == NDJSON else frozenset()
    async with resource.adapter.transaction(snapshot=True) as tx:
        reader = _ChunkReader(tx, resource, plan, start, chunk)
        pending: asyncio.Task[Chunk] | None = asyncio.ensure_future(reader.first())
        try:
            while pending is not None:
                rows, fetch, full = await pending
                if reader.truncated:
                    into.headers["X-Truncated"] = truncated_note(resource.config.max_rows)
                # Read ahead: the database works on the next chunk while this one is encoded.
                pending = reader.next_after(rows, fetch) if full else None
                # Encoded by plan.select: order columns fetched for the keyset stay out.
                if rows and skip:
                    items = encode_rows(resource, plan.select, rows, skip)
                    body = ndjson_lines(items, names, True, consume=True)
                else:
                    body = encode(encode_rows(resource, plan.select, rows), names) if rows else b""
                yield header + body
                header = b""
                into.rows += len(rows)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending


def truncated_note(max_rows: int) -> str:
    """The X-Truncated header of an answer cut at max_rows: the same on every path."""
    return f"only the first {max_rows} rows (max_rows)"


Chunk = tuple[list[Row], list[Column], bool]


class _ChunkReader:
    """Reads an export's keyset chunks, each starting after the last row of the one before,
    up to max_rows; `truncated` says whether rows beyond max_rows were left out."""

    def __init__(
        self, tx: Transaction, resource: Resource, plan: ListPlan, start: list[Any], chunk: int
    ) -> None:
        self.tx, self.resource, self.plan, self.start = tx, resource, plan, start
        self.chunk = chunk
        self.remaining = resource.config.max_rows
        self.truncated = False

    async def first(self) -> Chunk:
        """The first chunk, read one row long: that row says whether more follow. When the
        cap lies beyond this chunk, a probe past max_rows rows says whether it cuts any."""
        size = min(self.chunk, self.remaining)
        rows, fetch = await self._fetch(self.start, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        self.remaining -= len(rows)
        if more and self.remaining == 0:
            self.truncated = True
        elif more:
            self.truncated = await self._beyond_cap()
        return rows, fetch, more and self.remaining > 0

    async def read(self, conditions: list[Any]) -> Chunk:
        limit = min(self.chunk, self.remaining)
        rows, fetch = await self._fetch(conditions, limit)
        self.remaining -= len(rows)
        return rows, fetch, len(rows) == limit and self.remaining > 0

    async def _fetch(self, conditions: list[Any], limit: int) -> tuple[list[Row], list[Column]]:
        select, fetch = page_select(self.resource, self.plan, conditions, limit)
        return await self.tx.select(select), fetch

    async def _beyond_cap(self) -> bool:
        """Whether a row exists past the first max_rows (the database skips them, sending one
        row at most); where the DBMS cannot skip rows, the cut is assumed."""
        select, _ = page_select(self.resource, self.plan, self.start, 1)
        found = await self.tx.has_rows_beyond(select, self.resource.config.max_rows)
        return True if found is None else found

    def next_after(self, rows: list[Row], fetch: list[Column]) -> asyncio.Task[Chunk] | None:
        order = self.plan.order
        last = cursor_values(self.resource, position(fetch, self.plan, rows[-1]), order)
        beyond = after(order, last)
        if beyond is None:
            return None
        return asyncio.ensure_future(self.read([*self.start, beyond]))
