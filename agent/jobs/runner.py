"""The agent's job service: runs each job when its schedule says (`agent.schedule`), when
asked (`POST /v1/jobs/{name}/runs`), and at start when a killed agent left a run unfinished
(resumed from its checkpoint, under the same run number) or, with `catch_up`, when a run was
missed while it was down.

Rules:
- One run per job at a time (the job's file lock, `JobStore.claim`): a start while one is
  under way is refused (409 for a caller) and a scheduled one is recorded as skipped.
- Each run's report is written when it starts ("running") and when it ends; the report is
  written before the checkpoint is cleared, so a kill between the two resumes a finished
  run, which then finds nothing more and ends with the same counts.
- A run stopped by the agent's own shutdown keeps its checkpoint and resumes at the next
  start; a run that fails (the sink, the database, `timeout`) ends "failed" with the reason,
  its watermark at the last acknowledged chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridgehead.agent.api.apply import ImportRefused
from bridgehead.agent.api.query_types import QueryTypes
from bridgehead.agent.catalog import Catalog, Resource
from bridgehead.agent.config.jobs import JobConfig
from bridgehead.agent.config.model import QueryConfig
from bridgehead.agent.errors import RunUnderWay
from bridgehead.agent.jobs.export import ExportRefused, run_export, run_query_export
from bridgehead.agent.jobs.feeds import FeedFailed
from bridgehead.agent.jobs.imports import run_import
from bridgehead.agent.jobs.queries import QueryRefused, query_rows
from bridgehead.agent.jobs.sinks import SinkFailed, sink_for
from bridgehead.agent.jobs.store import Checkpoint, JobState, JobStore, Report
from bridgehead.agent.schedule import Timetable

log = logging.getLogger("bridgehead.jobs")
Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
FAILURES = (
    SinkFailed,
    ExportRefused,
    ImportRefused,
    FeedFailed,
    QueryRefused,
    TimeoutError,
    OSError,
    ValueError,
)


def kind_of(job: JobConfig) -> str:
    return "export" if job.export is not None else "import"


def summary(report: Report) -> str:
    """A run's counts in words, for the log and the command line."""
    read = f"read {report.get('read', 0)}"
    if report.get("kind") == "export":
        return f"{read}, exported {report.get('exported', 0)} in {report.get('chunks', 0)} chunks"
    counted = ("inserted", "updated", "unchanged", "deleted", "rejected")
    return ", ".join([read, *(f"{n} {report.get(n, 0)}" for n in counted)])


def _reason(exc: Exception, job: JobConfig) -> str:
    if isinstance(exc, TimeoutError):
        return f"the run took longer than its timeout ({job.timeout:g} s)"
    if isinstance(exc, FAILURES):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (see the agent log)"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Jobs:
    def __init__(
        self,
        jobs: dict[str, JobConfig],
        catalog: Callable[[], Catalog],
        state_dir: Path,
        *,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        queries: Mapping[str, QueryConfig] | None = None,
    ) -> None:
        self.jobs, self.catalog, self.clock, self.sleep = jobs, catalog, clock, sleep
        self.queries = dict(queries or {})
        self.query_types = QueryTypes()
        self.stores = {name: JobStore(state_dir, name, job.keep_runs) for name, job in jobs.items()}
        self.timetable = Timetable()
        self.running: dict[str, asyncio.Task[Report]] = {}
        self._reported: set[str] = set()
        """Jobs whose running run has written its final report (and is letting go its lock)."""
        self._started: dict[str, asyncio.Future[Report]] = {}
        self._claiming: set[str] = set()
        self._skipped: dict[str, list[str]] = {}
        """Scheduled starts skipped while a run was under way, for that run's report."""
        self._latest: dict[str, asyncio.Task[Report]] = {}
        self.listeners: list[Callable[[Report], None]] = []
        """Told of every run that ends (succeeded or failed), with its final report."""
        self._loop: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        now = self.clock()
        for name, job in self.jobs.items():
            state = await asyncio.to_thread(self.stores[name].load)
            if state.current is not None:
                log.info("job %s: resuming run %d from chunk %d", name, state.current.run,
                         state.current.chunk)  # fmt: skip
                await self._begin(name, state.current.planned, dry_run=False, resume=True)
            schedule = job.timetable()
            if schedule is None:
                continue
            last = datetime.fromisoformat(state.last_planned) if state.last_planned else None
            due = self.timetable.plan(name, schedule, now, last, job.catch_up)
            if due <= now and state.current is None:
                log.info("job %s: a run was missed while the agent was down; running it now",
                         name)  # fmt: skip
        self._loop = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self.running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, *FAILURES):
                await task
        self._loop = None

    async def _tick(self) -> None:
        while True:
            now = self.clock()
            for name, planned in self.timetable.due(now):
                try:
                    await self._begin(name, planned.isoformat(), dry_run=False, resume=False)
                except RunUnderWay:  # recorded in the report of the run that held it up
                    self._skipped.setdefault(name, []).append(planned.isoformat())
                    log.warning("job %s: the run planned for %s is skipped: the last one is "
                                "still under way", name, planned.isoformat())  # fmt: skip
            wake = self.timetable.next_wake()
            delay = 3600.0 if wake is None else max(0.0, (wake - self.clock()).total_seconds())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(delay, 60.0))

    # -- what the API and the CLI ask ----------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        job = self.jobs[name]
        next_run = self.timetable.next_of(name)
        return {
            "name": name,
            "kind": kind_of(job),
            "schedule": job.cadence,
            "time_zone": job.time_zone,
            "next_run": None if next_run is None else next_run.isoformat(),
            "running": name in self.running,
        }

    async def last(self, name: str) -> Report | None:
        found = await asyncio.to_thread(self.stores[name].reports, 1)
        return found[0] if found else None

    async def reports(self, name: str, limit: int = 100) -> list[Report]:
        return await asyncio.to_thread(self.stores[name].reports, limit)

    async def report(self, name: str, run: int) -> Report | None:
        return await asyncio.to_thread(self.stores[name].report, run)

    async def run_now(self, name: str, *, dry_run: bool = False) -> Report:
        """Start a run at once; its first report (status "running"). RunUnderWay if one is."""
        await self._begin(name, None, dry_run=dry_run, resume=False)
        return await asyncio.shield(self._started[name])

    async def finished(self, name: str) -> Report:
        """Wait for the job's latest run to end; its final report."""
        return await asyncio.shield(self._latest[name])

    # -- one run -------------------------------------------------------------------------------

    async def _begin(self, name: str, planned: str | None, *, dry_run: bool, resume: bool) -> None:
        ending = self.running.get(name)
        if ending is not None and name in self._reported:
            # Its final report is out (a caller may have read it): only its lock is still
            # being let go, so this run waits for that instead of being refused.
            await asyncio.wait({ending})
        if name in self.running or name in self._claiming:
            raise RunUnderWay(
                f"job {name!r} has a run under way; wait for it to end "
                f"(GET /v1/jobs/{name}/runs) and try again"
            )
        self._claiming.add(name)
        try:
            lock = await asyncio.to_thread(self.stores[name].claim)
        finally:
            self._claiming.discard(name)
        self._started[name] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(name, planned, dry_run, resume, lock))
        self.running[name] = self._latest[name] = task
        self._reported.discard(name)
        task.add_done_callback(lambda _: self.running.pop(name, None))

    async def _run(
        self, name: str, planned: str | None, dry_run: bool, resume: bool, lock: int
    ) -> Report:
        store, job = self.stores[name], self.jobs[name]
        try:
            state = await asyncio.to_thread(store.load)
            checkpoint = self._checkpoint(state, planned, dry_run, resume)
            await asyncio.to_thread(self._open, store, state, checkpoint)
            report = self._report(name, checkpoint, "running", kind_of(job))
            await asyncio.to_thread(store.record, report)
            self._started[name].set_result(report)
            return await self._carry(name, job=job, store=store, state=state,
                                     checkpoint=checkpoint, report=report)  # fmt: skip
        except BaseException as exc:
            started = self._started[name]
            if not started.done():
                started.set_exception(exc)
                started.exception()  # retrieved here: a scheduled run has no one waiting
            raise
        finally:
            await asyncio.to_thread(store.release, lock)

    def _checkpoint(
        self, state: JobState, planned: str | None, dry_run: bool, resume: bool
    ) -> Checkpoint:
        if state.current is not None and (resume or not dry_run):
            return state.current  # an interrupted run is finished before a new one starts
        checkpoint = Checkpoint(
            run=state.next_run, planned=planned, dry_run=dry_run, bound=None,
            started=self.clock().isoformat(), watermark_before=state.watermark,
        )  # fmt: skip
        state.next_run += 1
        if planned is not None:
            state.last_planned = planned
        if not dry_run:
            state.current = checkpoint
        return checkpoint

    @staticmethod
    def _open(store: JobStore, state: JobState, checkpoint: Checkpoint) -> None:
        store.save(state)

    async def _carry(
        self, name: str, *, job: JobConfig, store: JobStore, state: JobState,
        checkpoint: Checkpoint, report: Report,
    ) -> Report:  # fmt: skip
        export = job.export
        sink = sink_for(export.to, name, self.sleep) if export is not None else None
        try:
            async with asyncio.timeout(job.timeout):
                if export is not None and sink is not None and export.from_.query is not None:
                    query = export.from_.query
                    counts = await run_query_export(
                        export, batches=self._query_rows(query),
                        defuse=self.queries[query].csv_formulas == "escape",
                        store=store, state=state, sink=sink, checkpoint=checkpoint,
                    )  # fmt: skip
                elif export is not None and sink is not None:
                    assert export.from_.resource is not None
                    counts = await run_export(
                        export, resource=await self._resource(export.from_.resource),
                        store=store, state=state, sink=sink, checkpoint=checkpoint,
                        clock=self.clock,
                    )  # fmt: skip
                else:
                    counts = await self._import(job, store, state, checkpoint)
        except asyncio.CancelledError:
            report = {**report, "status": "interrupted", **self._progress(name, checkpoint, state)}
            await asyncio.shield(asyncio.to_thread(store.record, report))
            raise
        except Exception as exc:  # every failure ends the run with its reason
            why = _reason(exc, job)
            if isinstance(exc, FAILURES):
                log.error("job %s: run %d failed: %s", name, checkpoint.run, why)
            else:
                log.exception("job %s: run %d failed", name, checkpoint.run)
            report = {**report, "status": "failed", "error": why,
                      **self._progress(name, checkpoint, state)}  # fmt: skip
            await self._ended(store, state, report)
            return report
        finally:
            if sink is not None:
                await sink.close()
        report = {
            **report,
            **self._progress(name, checkpoint, state),
            **counts,
            "status": "succeeded",
        }
        log.info("job %s: run %d %s: %s", name, checkpoint.run,
                 "(dry run) done" if checkpoint.dry_run else "done", summary(report))  # fmt: skip
        await self._ended(store, state, report)
        return report

    async def _resource(self, name: str) -> Resource:
        resource = await self.catalog().get(name)
        if resource is None:
            raise ExportRefused(f"resource {name!r} is not served (see the agent log)")
        return resource

    async def _import(
        self, job: JobConfig, store: JobStore, state: JobState, checkpoint: Checkpoint
    ) -> dict[str, Any]:
        imported = job.import_
        assert imported is not None
        source, query = imported.from_.resource, imported.from_.query
        return await run_import(
            imported, target=await self._resource(imported.into),
            source=await self._resource(source) if source is not None else None,
            query=self._query_rows(query) if query is not None else None,
            store=store, state=state, checkpoint=checkpoint, sleep=self.sleep,
        )  # fmt: skip

    def _query_rows(self, name: str) -> Callable[[int], AsyncIterator[list[dict[str, Any]]]]:
        query = self.queries.get(name)
        if query is None:
            raise ExportRefused(f"no query named {name!r} in this config")
        adapter = self.catalog().adapter(query.source)
        return lambda skip: query_rows(name, query, adapter, self.query_types, skip)

    def _progress(self, name: str, checkpoint: Checkpoint, state: JobState) -> dict[str, Any]:
        skipped = self._skipped.get(name, [])
        return {
            **checkpoint.counts, "finished": self.clock().isoformat(),
            "chunks": checkpoint.chunk, "watermark_after": state.watermark,
            "skipped_starts": list(skipped),
        }  # fmt: skip

    async def _ended(self, store: JobStore, state: JobState, report: Report) -> None:
        await asyncio.to_thread(self._end, store, state, report)
        self._reported.add(str(report["job"]))
        self._skipped.pop(str(report["job"]), None)
        for listener in self.listeners:
            listener(report)

    @staticmethod
    def _end(store: JobStore, state: JobState, report: Report) -> None:
        """The report first, then the checkpoint cleared (see the module's rules)."""
        store.record(report)
        if not report.get("dry_run"):
            state.current = None
            store.save(state)

    def _report(self, name: str, checkpoint: Checkpoint, status: str, kind: str) -> Report:
        return {
            "id": checkpoint.run, "job": name, "kind": kind, "status": status,
            "dry_run": checkpoint.dry_run, "planned": checkpoint.planned,
            "started": checkpoint.started, "finished": None,
            "read": 0, "exported": 0, "chunks": checkpoint.chunk,
            "inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0, "rejected": 0,
            "rejects": [], "watermark_before": checkpoint.watermark_before,
            "watermark_after": None, "checksum": None, "error": None,
        }  # fmt: skip
