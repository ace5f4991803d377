"""The cheap liveness probe of a source: one `SELECT 1`-class statement through the adapter's
own pool, bounded by a short timeout, for readiness checks and the admin page.

Rules: only the public `Adapter` surface is used (any adapter, third-party ones included, can
be probed); a source never opened is opened first, so the probe also learns its dialect.
The probe's statement is the dialect's (`PROBE_SQL`), ANSI `SELECT 1` where none is listed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridgehead.adapters.base import Adapter, PoolStats
from bridgehead.adapters.errors import SourceError

PROBE_SQL: dict[str, str] = {
    "oracle": "SELECT 1 FROM DUAL",
    "db2": "SELECT 1 FROM SYSIBM.SYSDUMMY1",
}
"""Dialect name → its probe, where plain `SELECT 1` is not a statement."""
PROBE_TIMEOUT = 2.0


def probe_sql(dialect_name: str) -> str:
    return PROBE_SQL.get(dialect_name, "SELECT 1")


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome: `error` is None when the source answered."""

    latency: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def probe(
    adapter: Adapter,
    seconds: float = PROBE_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Run the source's probe; a failure or a timeout is a result, never an exception."""
    started = clock()
    try:
        async with asyncio.timeout(seconds):
            await _run(adapter)
    except TimeoutError:
        return ProbeResult(clock() - started, f"no answer within {seconds:g} s")
    except SourceError as exc:
        return ProbeResult(clock() - started, exc.internal)
    return ProbeResult(clock() - started)


async def _run(adapter: Adapter) -> None:
    try:
        name = adapter.dialect.name
    except RuntimeError:  # never opened: the first connection learns the dialect
        await adapter.open()
        name = adapter.dialect.name
    await adapter.fetch(probe_sql(name), (), 1)


@runtime_checkable
class Pooled(Protocol):
    """An adapter that reports its connection pool (every built-in one does)."""

    @property
    def pool(self) -> PoolStats: ...


def pool_stats(adapter: Adapter) -> PoolStats | None:
    """The adapter's pool figures, or None for an adapter that keeps no pool."""
    return adapter.pool if isinstance(adapter, Pooled) else None
