"""Puts a blocking DB-API driver behind the async `Adapter` surface.

Rules this module keeps:
- Driver calls run only on the adapter's own threads (`adapters.workers`), at most one per
  pooled connection, so at most `pool_size` statements run at once and the event loop
  never blocks.
- A connection is leased for one statement (or one stream) and returned only when the
  driver call holding it has really finished, even if the caller gave up earlier.
- Timeouts and cancellations are the adapter's own: on expiry or when the caller goes away,
  another thread calls the driver's cancel (ODBC `SQLCancel`, sqlite3 `interrupt`).
- A connection the driver reports lost is discarded with every idle one (a restarted server
  invalidates them all); reads retry once on a fresh connection.
- The statement methods (select, insert, named queries, ...) come from `adapters.statements`,
  built on the few primitives here: fetch rows, run one statement, stream a statement's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from bridgehead.adapters import errors
from bridgehead.adapters.base import (
    Outcome,
    PoolStats,
    ResultSet,
    Row,
    RowStream,
    SourceSettings,
)
from bridgehead.adapters.dialects import Dialect, for_dbms
from bridgehead.adapters.jobs import (
    Job,
    close_cursor,
    execute,
    fetch_batch,
    fetch_rows,
    named_rows,
    result_sets,
    run_each,
    run_statement,
)
from bridgehead.adapters.statements import SourceStatements, TransactionStatements
from bridgehead.adapters.types import TableEntry, TableInfo, TableRef, ValueRules, with_rules
from bridgehead.adapters.workers import Workers

T = TypeVar("T")
log = logging.getLogger(__name__)

CANCEL_GRACE = 5.0
"""Seconds to wait for a cancelled statement to return before its connection is abandoned."""


class Transaction(TransactionStatements):
    """Statements on one leased connection, committed together or not at all."""

    def __init__(self, adapter: PooledAdapter, job: Job) -> None:
        self._adapter = adapter
        self._job = job

    @property
    def dialect(self) -> Dialect:
        return self._adapter.dialect

    async def execute(self, sql: str, params: Sequence[Any]) -> Outcome:
        check = self._adapter._check_diagnostics
        return await self._adapter._call(self._job, run_statement, sql, params, check)

    async def _fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        return await self._adapter._call(self._job, fetch_rows, sql, params, max_rows)

    async def _execute_each(
        self, sql: str, rows: Sequence[Sequence[Any]], key_sql: str | None
    ) -> list[Outcome]:
        check = self._adapter._check_diagnostics
        return await self._adapter._call(self._job, run_each, sql, rows, check, key_sql)


class PooledAdapter(SourceStatements, ABC):
    """The pooling, threading and cancellation shared by every DB-API adapter."""

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self._workers = Workers(settings.pool_size, f"bh-{settings.name}")
        self._side = ThreadPoolExecutor(2, f"bh-{settings.name}-cancel")
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[Any] = []
        self._dialect: Dialect | None = None
        self.server_version: str | None = None
        """The DBMS's version, learned with the dialect on the first connection."""
        self._closed = False
        self._running: set[asyncio.Future[Any]] = set()
        """Statements on the pool's threads, abandoned ones included: close() waits for them."""
        self._waiting = 0
        self._waited = 0.0

    # -- what each driver provides (blocking; called on the pool's threads) --------------------

    @abstractmethod
    def _connect(self) -> Any:
        """Open one DB-API connection in autocommit mode."""

    @abstractmethod
    def _dbms_name(self, conn: Any) -> str:
        """The DBMS's name as the driver reports it (ODBC `SQL_DBMS_NAME`)."""

    def _dbms_version(self, conn: Any) -> str | None:
        """The DBMS's version as the driver reports it (ODBC `SQL_DBMS_VER`), if it does."""
        del conn
        return None

    @abstractmethod
    def _interrupt(self, job: Job) -> None:
        """Stop the statement running on `job`; called from another thread."""

    @abstractmethod
    def _translate(self, exc: Exception) -> errors.SourceError | None:
        """The classified error for a driver exception; None if it is not the driver's."""

    @abstractmethod
    def _describe(self, job: Job, table: TableRef) -> TableInfo | None:
        """Introspect a table's columns, types and primary key."""

    @abstractmethod
    def _tables(self, job: Job) -> list[TableEntry]:
        """The catalog's tables and views, system ones left out."""

    @abstractmethod
    def _unique_keys(self, job: Job, table: TableRef) -> list[tuple[str, ...]]:
        """Each unique index's columns, in index order."""

    @abstractmethod
    def _begin(self, job: Job, snapshot: bool) -> None:
        """Start a transaction: a write lock at once, or a consistent snapshot for reading."""

    @abstractmethod
    def _end(self, job: Job, commit: bool) -> None:
        """Commit or roll back, and return the connection to autocommit."""

    def _check_diagnostics(self, cursor: Any) -> None:
        """Raise the classified error if the driver's diagnostics for a statement that did not
        raise say it failed (a server error reported as a warning); sqlite3 has none."""
        del cursor

    def _reconnect_for_dialect(self, conn: Any) -> Any:
        """The first connection, or a new one if the dialect wants connection options."""
        return conn

    # -- the Adapter surface -----------------------------------------------------------------

    @property
    def source(self) -> str:
        return self.settings.name

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            raise RuntimeError(f"source {self.source!r} is not open yet")
        return self._dialect

    async def open(self) -> None:
        """Lease one connection: the first one also learns the DBMS, and so the dialect."""
        async with self._lease():
            return

    @property
    def value_rules(self) -> ValueRules:
        return self.dialect.value_rules

    async def tables(self) -> list[TableEntry]:
        return await self._read(self._tables)

    async def unique_keys(self, table: TableRef) -> list[tuple[str, ...]]:
        return await self._read(self._unique_keys, table)

    async def describe(self, table: TableRef) -> TableInfo | None:
        info = await self._read(self._describe, table)
        return with_rules(info, self.value_rules) if info is not None else None

    async def fetch(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        return await self._read(fetch_rows, sql, params, max_rows)

    async def _result(self, sql: str, params: Sequence[Any], max_rows: int) -> ResultSet:
        async with self._lease() as job:
            return await self._call(job, named_rows, sql, params, max_rows)

    async def _result_sets(
        self, statements: Sequence[tuple[str, Sequence[Any]]], max_rows: int
    ) -> list[ResultSet]:
        async with self._lease() as job:
            return await self._call(job, result_sets, statements, max_rows)

    @asynccontextmanager
    async def _stream(
        self, sql: str, params: Sequence[Any], batch_size: int
    ) -> AsyncIterator[RowStream]:
        async with self._lease() as job:
            try:
                await self._call(job, execute, sql, params)
                description = job.cursor.description or ()
                yield RowStream([d[0] for d in description], self._batches(job, batch_size))
            finally:
                if not job.timed_out and (job.pending is None or job.pending.done()):
                    await self._call(job, close_cursor)

    @asynccontextmanager
    async def transaction(self, *, snapshot: bool = False) -> AsyncIterator[Transaction]:
        """One transaction on one connection; rolled back if the block raises or is cancelled.

        `snapshot=True` is for reading several statements from one consistent state.
        """
        async with self._lease() as job:
            await self._call(job, self._begin, snapshot)
            committed = False
            try:
                yield Transaction(self, job)
                await self._call(job, self._end, True)
                committed = True
            finally:
                if not committed:
                    await self._abandon(job)

    async def _abandon(self, job: Job) -> None:
        """Roll back; a connection still busy (a cancelled statement) is closed instead."""
        if job.broken or (job.pending is not None and not job.pending.done()):
            job.broken = True
            return
        try:
            await asyncio.shield(self._call(job, self._end, False))
        except Exception:
            job.broken = True

    async def close(self) -> None:
        self._closed = True
        if self._running:  # cancelled statements still ending: let them, within the grace
            await asyncio.wait(set(self._running), timeout=CANCEL_GRACE)
        idle, self._idle = self._idle, []
        loop = asyncio.get_running_loop()
        for conn in idle:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._side, conn.close)
        self._workers.shutdown()
        self._side.shutdown(wait=False, cancel_futures=True)

    @property
    def pool(self) -> PoolStats:
        """Connections leased now, the pool's size, callers waiting, and seconds waited so far."""
        size = self.settings.pool_size
        in_use = size - self._slots._value
        return PoolStats(in_use, size, self._waiting, self._waited)

    # -- leasing -----------------------------------------------------------------------------

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read-only call; retry once on a fresh connection if a pooled one was dead."""
        for attempt in (1, 2):
            async with self._lease() as job:
                try:
                    return await self._call(job, fn, *args)
                except errors.SourceUnavailable:
                    if job.fresh or attempt == 2:
                        raise
                    log.info("source %s: pooled connection lost, retrying", self.source)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[Job]:
        if self._closed:
            raise errors.SourceUnavailable(self.source, "adapter closed")
        waited_from = time.monotonic()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            self._waited += time.monotonic() - waited_from
        try:
            job = await self._checkout()
        except BaseException:
            self._slots.release()
            raise
        try:
            yield job
        finally:
            pending = job.pending
            if pending is not None and not pending.done():
                pending.add_done_callback(lambda done: self._checkin_after(job, done))
            else:
                self._checkin(job)

    async def _checkout(self) -> Job:
        if self._idle:
            return Job(self._idle.pop(), fresh=False)
        conn = await self._workers.submit(self._open_connection)
        return Job(conn, fresh=True)

    def _checkin_after(self, job: Job, done: asyncio.Future[Any]) -> None:
        """Return the connection once an abandoned statement ends; its outcome is moot."""
        if not done.cancelled():
            done.exception()  # retrieved, so asyncio does not report it as lost
        self._checkin(job)

    def _checkin(self, job: Job) -> None:
        self._slots.release()
        if not job.broken and not self._closed:
            self._idle.append(job.conn)
            return
        doomed = [job.conn]
        if job.broken:
            doomed += self._idle
            self._idle = []
        for conn in doomed:
            with contextlib.suppress(RuntimeError):  # executor already shut down
                self._side.submit(_close_quietly, conn)

    def _open_connection(self) -> Any:
        try:
            conn = self._connect()
            if self._dialect is None:
                self._dialect = for_dbms(self._dbms_name(conn))
                self.server_version = self._dbms_version(conn)
                conn = self._reconnect_for_dialect(conn)
            cursor = conn.cursor()
            for statement in self._dialect.session_setup:
                cursor.execute(statement)
            cursor.close()
        except Exception as exc:
            failure = self._translate(exc)
            if failure is None:
                raise
            raise errors.SourceUnavailable(self.source, failure.internal) from exc
        return conn

    # -- running on the pool -----------------------------------------------------------------

    async def _call(self, job: Job, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the job's connection, on a worker; its result, within the timeout.
        The worker's own future (`job.pending`) says when the driver call has really ended,
        whether or not this caller still waits for it."""
        future = self._workers.submit(self._work, job, fn, *args)
        job.pending = future
        self._running.add(future)
        future.add_done_callback(self._settled)
        try:
            async with asyncio.timeout(self.settings.query_timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            job.timed_out = True
            await self._stop(job, future)
            raise errors.QueryTimedOut(
                self.source, f"statement ran past {self.settings.query_timeout}s"
            ) from None
        except asyncio.CancelledError:
            self._side.submit(self._interrupt_quietly, job)
            raise

    def _settled(self, future: asyncio.Future[Any]) -> None:
        """A statement ended. Its outcome counts as seen: an abandoned (cancelled) statement's
        error is expected, and whoever still awaits the statement gets it all the same."""
        self._running.discard(future)
        if not future.cancelled():
            future.exception()

    def _work(self, job: Job, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(job, *args)
        except Exception as exc:
            failure = self._translate(exc)
            if failure is None:
                raise
            if isinstance(failure, errors.SourceUnavailable):
                job.broken = True
            if self._dialect is not None and len(args) >= 2 and isinstance(args[0], str):
                failure = self._dialect.refine(failure, args[0], args[1])
            raise failure from exc

    async def _stop(self, job: Job, future: asyncio.Future[Any]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._side, self._interrupt_quietly, job)
        try:
            with contextlib.suppress(errors.SourceError):  # the cancelled statement's own error
                await asyncio.wait_for(asyncio.shield(future), CANCEL_GRACE)
        except TimeoutError:
            log.warning("source %s: statement ignored cancel; abandoning connection", self.source)
            job.broken = True

    def _interrupt_quietly(self, job: Job) -> None:
        try:
            self._interrupt(job)
        except Exception:
            log.warning("source %s: cancel failed", self.source, exc_info=True)

    async def _batches(self, job: Job, size: int) -> AsyncIterator[list[Row]]:
        while rows := await self._call(job, fetch_batch, size):
            yield rows


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()
