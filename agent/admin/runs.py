"""The jobs as the admin listener shows them: each job with its last runs for `/status.json`
and the page, and `RunWatcher`, the listener on `Jobs.listeners` that counts every finished
run in the Prometheus figures and writes it to the audit log.

Rules: a run's report is reduced to what the page shows (`run_row`), the rows written being
inserted + updated + deleted for an import and exported for an export; dry runs count as
runs but add no rows, no last success and no audit record; the watcher is called on the
event loop and never waits there: its audit records are written by tasks it keeps until they
are done (`close` waits for them, before the audit log closes).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from bridgehead.agent.admin.metrics import AgentMetrics
from bridgehead.agent.api.trace import Auditor
from bridgehead.agent.audit import AuditError, AuditRecord
from bridgehead.agent.config.jobs import JobConfig
from bridgehead.agent.jobs.runner import Jobs, kind_of
from bridgehead.agent.jobs.store import Report

log = logging.getLogger("bridgehead.admin")
RUNS_SHOWN = 20
"""The runs of each job `/status.json` carries, newest first."""


def written(report: Report) -> int:
    """The rows a run wrote: inserted, updated and deleted by an import; sent by an export."""
    if report.get("kind") == "export":
        return int(report.get("exported") or 0)
    return sum(int(report.get(n) or 0) for n in ("inserted", "updated", "deleted"))


def run_row(report: Report) -> dict[str, Any]:
    """A run as the page shows it."""
    return {
        "id": report.get("id"),
        "status": report.get("status"),
        "dry_run": bool(report.get("dry_run")),
        "started": report.get("started"),
        "finished": report.get("finished"),
        "read": int(report.get("read") or 0),
        "written": written(report),
        "rejected": int(report.get("rejected") or 0),
        "error": report.get("error"),
    }


async def job_states(jobs: Jobs | None) -> list[dict[str, Any]]:
    """Every job: what it is, when it runs next, and its last `RUNS_SHOWN` runs."""
    if jobs is None:
        return []
    found = []
    for name in jobs.jobs:
        about = jobs.describe(name)
        runs = await jobs.reports(name, RUNS_SHOWN)
        found.append({
            "name": name, "kind": about["kind"], "schedule": about["schedule"],
            "next_run": about["next_run"], "running": about["running"],
            "runs": [run_row(r) for r in runs],
        })  # fmt: skip
    return found


def target_of(job: JobConfig) -> str:
    """The resource a job reads (an export; `queries:NAME` for a query) or writes (an import)."""
    if job.export is not None:
        source = job.export.from_
        return source.resource or f"queries:{source.query}"
    assert job.import_ is not None
    return job.import_.into


def audit_record(job: JobConfig, report: Report) -> AuditRecord:
    """The audit record of a finished run: `job:NAME` did `export` or `import` on the resource."""
    name = str(report["job"])
    started = datetime.fromisoformat(str(report["started"]))
    finished = datetime.fromisoformat(str(report["finished"]))
    return AuditRecord(
        time=finished, request_id=f"job:{name}/{report['id']}", principal=f"job:{name}",
        target=target_of(job), operation=kind_of(job), rows=written(report),
        status=200 if report.get("status") == "succeeded" else 500,
        duration_ms=round(max(0.0, (finished - started).total_seconds()) * 1000, 3), via="job",
    )  # fmt: skip


class RunWatcher:
    """Told of every run that ends (a `Jobs` listener): the figures, then the audit record."""

    def __init__(self, jobs: Jobs, metrics: AgentMetrics, audit: Auditor) -> None:
        self.jobs, self.metrics, self.audit = jobs, metrics, audit
        self.pending: set[asyncio.Task[None]] = set()
        metrics.watch_jobs(list(jobs.jobs), lambda: set(jobs.running))

    def __call__(self, report: Report) -> None:
        try:
            self.metrics.observe_run(report)
        except Exception:  # a figure lost must never cost the audit record
            log.exception("admin figures: cannot count run %s of job %s",
                          report.get("id"), report.get("job"))  # fmt: skip
        if report.get("dry_run"):
            return
        try:
            rec = audit_record(self.jobs.jobs[str(report.get("job"))], report)
        except (KeyError, TypeError, ValueError):  # never raised into the run that ended
            log.exception("audit log: cannot make the record of run %s of job %s",
                          report.get("id"), report.get("job"))  # fmt: skip
            return
        task = asyncio.get_running_loop().create_task(self._record(rec))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _record(self, rec: AuditRecord) -> None:
        try:
            await self.audit.record(rec)
        except AuditError as exc:
            log.error("audit log: run %s not recorded: %s", rec.request_id, exc)

    async def close(self) -> None:
        """Wait for the audit records still being queued."""
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
