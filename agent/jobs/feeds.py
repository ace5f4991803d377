"""An import's input, record by record, each with its line number and the byte offset just
past it, so that a run can checkpoint where it stands and resume there.

- `UrlFeed` streams CSV (RFC 4180, a header line first, quoted fields may hold line breaks)
  or NDJSON from an HTTP(S) URL, through a proxy if configured, in bounded memory. When the
  connection drops mid-file it asks again from the last complete record with
  `Range: bytes=N-` and `If-Range` (the first answer's ETag or Last-Modified); a server
  that answers the whole file instead has it skipped up to N, unless the file changed (then
  the run fails: what was applied came from another version of it).
- A record that cannot be read (bad JSON, a CSV row with the wrong number of fields) comes
  with its reason instead of its values, to be rejected with its line number.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bridgehead.agent.config.jobs import ImportFrom
from bridgehead.common.tunnel.backoff import Backoff

log = logging.getLogger("bridgehead.jobs")
READ_SIZE = 1 << 16
RECONNECTS = 5
MAX_LINE = 16 << 20
"""The longest record accepted (a CSV record with its quoted line breaks), in bytes."""
Sleep = Callable[[float], Awaitable[None]]


class FeedFailed(Exception):
    """The input cannot be read (any more); the message says why."""


@dataclass(frozen=True)
class Record:
    line: int
    """The line the record starts on (1 is the CSV header, or the first NDJSON line)."""
    end: int
    """The byte offset just past the record: where a resumed run asks to continue."""
    values: dict[str, Any] | None
    error: str | None = None


@dataclass
class Position:
    """Where a feed stands: what a checkpoint keeps to resume it."""

    offset: int = 0
    line: int = 0
    """Lines read so far (the next record starts on line + 1)."""
    header: list[str] | None = None
    validator: str | None = None
    """The ETag (or Last-Modified) of the file being read, for If-Range."""


class UrlFeed:
    def __init__(self, source: ImportFrom, at: Position, sleep: Sleep = asyncio.sleep) -> None:
        assert source.url is not None
        self.url, self.source, self.at, self.sleep = source.url, source, at, sleep
        self.headers = {n: v.get_secret_value() for n, v in source.headers.items()}

    async def records(self) -> AsyncIterator[Record]:
        backoff, failures = Backoff(base=0.5, cap=10.0), 0
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60)
        ) as session:
            while True:
                try:
                    async for record in self._read(session):
                        failures = 0
                        yield record
                    return
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures += 1
                    if failures > RECONNECTS:
                        raise FeedFailed(f"{self.url}: {exc} ({failures} attempts)") from None
                    delay = backoff.next_delay()
                    log.warning("import from %s cut at byte %d (%s); asking again from there "
                                "in %.1f s", self.url, self.at.offset, exc, delay)  # fmt: skip
                    await self.sleep(delay)

    async def _read(self, session: aiohttp.ClientSession) -> AsyncIterator[Record]:
        headers = dict(self.headers)
        if self.at.offset:
            headers["Range"] = f"bytes={self.at.offset}-"
            if self.at.validator:
                headers["If-Range"] = self.at.validator
        async with session.get(self.url, headers=headers, proxy=self.source.proxy) as answer:
            if answer.status not in (200, 206):
                raise FeedFailed(f"{self.url} answered {answer.status} {answer.reason or ''}")
            validator = answer.headers.get("ETag") or answer.headers.get("Last-Modified")
            skip = 0
            if self.at.offset and answer.status == 200:
                if self.at.validator and validator != self.at.validator:
                    raise FeedFailed(
                        f"{self.url} changed while it was being imported (was "
                        f"{self.at.validator}, now {validator}); the next run reads it afresh"
                    )
                skip = self.at.offset  # no ranges here: read past what was taken already
            if self.at.validator is None:
                self.at.validator = validator
            async for record in self._split(answer.content, skip):
                yield record

    async def _split(self, body: aiohttp.StreamReader, skip: int) -> AsyncIterator[Record]:
        pending, quotes, start = bytearray(), 0, self.at.offset
        async for received in body.iter_chunked(READ_SIZE):
            data = received
            if skip:
                taken = min(skip, len(data))
                data, skip = data[taken:], skip - taken
            view = 0
            while (newline := data.find(b"\n", view)) >= 0:
                piece = data[view : newline + 1]
                view = newline + 1
                pending += piece
                if self.source.format == "csv":
                    quotes += piece.count(b'"')
                    if quotes % 2:
                        continue  # inside a quoted field: the record goes on
                record = self._record(bytes(pending), start)
                self.at.line += pending.count(b"\n")
                start += len(pending)
                self.at.offset = start
                pending.clear()
                quotes = 0
                if record is not None:
                    yield record
            pending += data[view:]
            if len(pending) > MAX_LINE:
                raise FeedFailed(f"line {self.at.line + 1} of {self.url} is over {MAX_LINE} bytes")
        if pending.strip():  # the last record, without a final line break
            record = self._record(bytes(pending), start)
            self.at.line += 1
            self.at.offset = start + len(pending)
            if record is not None:
                yield record

    def _record(self, raw: bytes, start: int) -> Record | None:
        line, end = self.at.line + 1, start + len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Record(line, end, None, f"not UTF-8 (byte {exc.start + 1} of the line)")
        if not text.strip():
            return None
        if self.source.format == "ndjson":
            return _json_record(text, line, end)
        fields = next(csv.reader([text.rstrip("\r\n")]), [])
        if self.at.header is None:
            self.at.header = fields
            return None
        if len(fields) != len(self.at.header):
            wanted = len(self.at.header)
            return Record(line, end, None, f"{len(fields)} fields where the header has {wanted}")
        values = {n: (v if v != "" else None) for n, v in zip(self.at.header, fields, strict=True)}
        return Record(line, end, values)


def _json_record(text: str, line: int, end: int) -> Record:
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Record(line, end, None, f"not JSON: {exc.msg}")
    if not isinstance(values, dict):
        return Record(line, end, None, "not a JSON object of column values")
    return Record(line, end, values)
