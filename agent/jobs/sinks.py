"""Where an export's chunks go, each acknowledged before the run moves past it.

- `FolderSink` writes chunk N of run R as `JOB-R-N.EXT`, atomically (a temporary file,
  fsynced, renamed): a reader never sees half a chunk, and a chunk sent again after a crash
  replaces itself with the same bytes.
- `HttpSink` POSTs each chunk with `Idempotency-Key: JOB/R/N`, so a receiver that keeps the
  keys takes a chunk sent twice (the agent killed between the answer and its checkpoint)
  once. 2xx acknowledges; 408, 429, 5xx and connection failures are retried with full-jitter
  backoff (honouring `Retry-After`) up to `attempts`; any other answer fails the run at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from bridgehead.agent.config.jobs import ExportTo
from bridgehead.common.files import write_atomically
from bridgehead.common.tunnel.backoff import Backoff

log = logging.getLogger("bridgehead.jobs")
MEDIA = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]


class SinkFailed(Exception):
    """The sink did not take a chunk; the message says why."""


class Sink(Protocol):
    async def send(self, run: int, chunk: int, body: bytes) -> None:
        """Deliver one chunk; return only once the sink holds it."""

    async def close(self) -> None: ...


class FolderSink:
    def __init__(self, folder: Path, job: str, extension: str) -> None:
        self.folder, self.job, self.extension = folder, job, extension

    async def send(self, run: int, chunk: int, body: bytes) -> None:
        path = self.folder / f"{self.job}-{run}-{chunk:06d}.{self.extension}"
        try:
            await asyncio.to_thread(write_atomically, path, body, 0o640)
        except OSError as exc:
            raise SinkFailed(f"cannot write {path}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        return None


class HttpSink:
    def __init__(self, to: ExportTo, job: str, sleep: Sleep = asyncio.sleep) -> None:
        assert to.url is not None
        self.url, self.job, self.to, self.sleep = to.url, job, to, sleep
        self.headers = {name: value.get_secret_value() for name, value in to.headers.items()}
        self.headers["Content-Type"] = MEDIA[to.format]
        self._session: aiohttp.ClientSession | None = None

    async def send(self, run: int, chunk: int, body: bytes) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        headers = {**self.headers, "Idempotency-Key": f"{self.job}/{run}/{chunk}"}
        backoff, why = Backoff(base=1.0, cap=60.0), ""
        for attempt in range(1, self.to.attempts + 1):
            try:
                async with self._session.post(
                    self.url, data=body, headers=headers, proxy=self.to.proxy
                ) as answer:
                    if 200 <= answer.status < 300:
                        return
                    why = f"{self.url} answered {answer.status} {answer.reason or ''}".strip()
                    if answer.status not in RETRIED:
                        raise SinkFailed(f"{why} to chunk {chunk}; not retried")
                    wait = _retry_after(answer.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                why, wait = f"{self.url}: {type(exc).__name__}: {exc}", None
            if attempt < self.to.attempts:
                delay = wait if wait is not None else backoff.next_delay()
                log.warning("job %s: chunk %d not taken (%s); again in %.1f s",
                            self.job, chunk, why, delay)  # fmt: skip
                await self.sleep(delay)
        raise SinkFailed(f"chunk {chunk} not taken after {self.to.attempts} attempts: {why}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), 300.0)


def sink_for(to: ExportTo, job: str, sleep: Sleep = asyncio.sleep) -> Sink:
    if to.dir is not None:
        return FolderSink(to.dir, job, to.format)
    return HttpSink(to, job, sleep)
