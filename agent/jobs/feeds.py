"""An import's input, record by record, each with its line number and the byte offset just
past it, so that a run can checkpoint where it stands and resume there.

- `UrlFeed` streams CSV (RFC 4180, a header line first, quoted fields may hold line breaks)
  or NDJSON from an HTTP(S) URL, through a proxy if configured, in bounded memory. When the
  connection drops mid-file it asks again from the last complete record with
  `Range: bytes=N-` and `If-Range` (the first answer's ETag or Last-Modified); a server
  that answers the whole file instead has it skipped up to N, unless the file changed (then
  the run fails: what was applied came from another version of it).
- Records are cut by `agent.api.records` (CSV with quoted line breaks, NDJSON), each with
  its line and the byte offset past it, which is what the checkpoint keeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from bridgehead.agent.api.records import Position, Record, RecordSplitter, RecordTooLong
from bridgehead.agent.config.jobs import ImportFrom
from bridgehead.common.tunnel.backoff import Backoff

log = logging.getLogger("bridgehead.jobs")
READ_SIZE = 1 << 16
RECONNECTS = 5
Sleep = Callable[[float], Awaitable[None]]


class FeedFailed(Exception):
    """The input cannot be read (any more); the message says why."""


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
        splitter = RecordSplitter(self.source.format, self.at)
        try:
            async for received in body.iter_chunked(READ_SIZE):
                data = received
                if skip:
                    taken = min(skip, len(data))
                    data, skip = data[taken:], skip - taken
                for record in splitter.feed(data):
                    yield record
            for record in splitter.end():
                yield record
        except RecordTooLong as exc:
            raise FeedFailed(f"{self.url}: {exc}") from None
