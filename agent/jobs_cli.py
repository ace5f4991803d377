"""`bridgehead jobs list | history NAME | run NAME [--dry-run] -c agent.yaml`.

`list` and `history` read the reconciliation reports in the state folder, so they work with
the agent running or not. `run` carries one run out in this process, through the same code
as the agent's own runs; the job's run lock keeps it from overlapping a run of the agent's
(refused, saying so). Exit codes: 0 the run succeeded, 1 it failed, 2 usage or config error.
"""

from __future__ import annotations

import asyncio
from typing import Any, TextIO

from bridgehead.agent.catalog import Catalog
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.errors import RunUnderWay
from bridgehead.agent.jobs.runner import Jobs, kind_of, summary
from bridgehead.agent.jobs.store import JobStore
from bridgehead.agent.sources import build_adapters, open_sources
from bridgehead.common.commands import Failure, UsageError

HISTORY = 20


def jobs_command(
    config: AgentConfig, action: str, name: str | None, dry_run: bool, out: TextIO
) -> int:
    if action == "list":
        return _list(config, out)
    if name is None or name not in config.jobs:
        known = ", ".join(config.jobs) or "none in this config"
        raise UsageError(f"name a job: bridgehead jobs {action} NAME ({known})")
    if action == "history":
        return _history(config, name, out)
    report = asyncio.run(_run_once(config, name, dry_run))
    print(_line(report), file=out)
    if report.get("error"):
        print(f"  error: {report['error']}", file=out)
    return 0 if report["status"] == "succeeded" else 1


def _store(config: AgentConfig, name: str) -> JobStore:
    return JobStore(config.state_path, name, config.jobs[name].keep_runs)


def _list(config: AgentConfig, out: TextIO) -> int:
    if not config.jobs:
        print("no jobs: in this config", file=out)
    for name, job in config.jobs.items():
        when = job.cadence or "on demand"
        last = _store(config, name).reports(1)
        print(
            f"{name}  {kind_of(job)}  {when}  last: {_line(last[0]) if last else 'never run'}",
            file=out,
        )
    return 0


def _history(config: AgentConfig, name: str, out: TextIO) -> int:
    reports = _store(config, name).reports(HISTORY)
    if not reports:
        print(f"job {name} has not run yet", file=out)
    for report in reports:
        print(_line(report), file=out)
    return 0


def _line(report: dict[str, Any]) -> str:
    dry = " (dry run)" if report.get("dry_run") else ""
    return f"run {report['id']} {report['status']}{dry} {report.get('started', '')}: " + summary(
        report
    )


async def _run_once(config: AgentConfig, name: str, dry_run: bool) -> dict[str, Any]:
    adapters = build_adapters(config)
    try:
        unreachable = await open_sources(adapters)
        if unreachable:
            source, error = next(iter(unreachable.items()))
            raise Failure(f"source {source} is not reachable: {error.internal}")
        catalog = Catalog(config.resources, adapters)
        problems = await catalog.load()
        if problems:
            raise Failure(str(problems[0]))
        jobs = Jobs({name: config.jobs[name]}, lambda: catalog, config.state_path,
                    queries=config.queries)  # fmt: skip
        try:
            await jobs.run_now(name, dry_run=dry_run)
        except RunUnderWay as exc:
            raise Failure(str(exc)) from None
        return await jobs.finished(name)
    finally:
        await asyncio.gather(*(adapter.close() for adapter in adapters.values()))
