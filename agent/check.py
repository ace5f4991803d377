"""`bridgehead check`: after the config validates, connect to every source and compare.

Reports each source's reachability and DBMS, each resource's table and columns, each named
query's SQL (compiled, not run) and each procedure (looked up), and warns about columns
served as text. Secrets never appear: connection strings are never printed, and driver
messages have their passwords scrubbed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TextIO

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.errors import SourceError
from bridgehead.agent.app import build_adapters, open_sources
from bridgehead.agent.catalog import Catalog, served_as_text
from bridgehead.agent.check_routines import Finding, check_procedure, check_query
from bridgehead.agent.config.model import AgentConfig


async def run_check(config: AgentConfig, out: TextIO) -> bool:
    adapters = build_adapters(config)
    try:
        failed = await open_sources(adapters)
        for name, adapter in adapters.items():
            if name in failed:
                print(f"sources.{name}: FAILED: {failed[name].internal}", file=out)
            else:
                print(f"sources.{name}: ok ({adapter.dialect.name})", file=out)
        live = {n: a for n, a in adapters.items() if n not in failed}
        resources_ok = await _check_resources(config, live, out)
        routines_ok = await _check_routines(config, live, out)
    finally:
        for adapter in adapters.values():
            await adapter.close()
    return not failed and resources_ok and routines_ok


async def _check_resources(
    config: AgentConfig, adapters: Mapping[str, Adapter], out: TextIO
) -> bool:
    catalog = Catalog({n: r for n, r in config.resources.items() if r.source in adapters}, adapters)
    problems = await catalog.load()
    for problem in problems:
        print(f"{problem.path}: FAILED: {problem.message}", file=out)
    for resource in catalog.resolved():
        print(f"resources.{resource.name}: ok ({len(resource.columns)} columns)", file=out)
        for warning in served_as_text(resource):
            print(f"warning: {warning}", file=out)
    return not problems


async def _check_routines(
    config: AgentConfig, adapters: Mapping[str, Adapter], out: TextIO
) -> bool:
    ok = True
    checks: Sequence[tuple[str, Callable[[], Awaitable[Finding | None]]]] = [
        (f"queries.{n}.sql", partial(check_query, n, q, adapters[q.source]))
        for n, q in config.queries.items()
        if q.source in adapters
    ] + [
        (f"procedures.{n}.name", partial(check_procedure, n, p, adapters[p.source]))
        for n, p in config.procedures.items()
        if p.source in adapters
    ]
    for path, check in checks:
        try:
            finding: Finding | None = await check()
        except SourceError as exc:
            finding = Finding(True, f"cannot check: {exc.internal or exc.public_detail}")
        if finding is None:
            print(f"{path}: ok", file=out)
        elif finding.failed:
            ok = False
            print(f"{path}: FAILED: {finding.message}", file=out)
        else:
            print(f"note: {path}: {finding.message}", file=out)
    return ok
