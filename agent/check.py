"""`bridgehead check`: after the config validates, connect to every source and compare.

Reports each source's reachability and DBMS, each resource's table and columns, each named
query's SQL (compiled, not run) and each procedure (looked up), and warns about columns
served as text, and how many days the tunnel certificate has left (an expired one fails the
check, with the command that replaces it). Secrets never appear: connection strings are
never printed, and driver messages have their passwords scrubbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TextIO

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.errors import SourceError
from bridgehead.agent.catalog import Catalog, served_as_text
from bridgehead.agent.check_routines import Finding, check_procedure, check_query
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.sources import build_adapters, open_sources
from bridgehead.agent.tunnel.renewal import expired_certificate, read_certificate
from bridgehead.certs.renewal import days_left


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
        tunnel_ok = await asyncio.to_thread(check_tunnel, config, out, datetime.now(UTC))
    finally:
        for adapter in adapters.values():
            await adapter.close()
    return not failed and resources_ok and routines_ok and tunnel_ok


def check_tunnel(config: AgentConfig, out: TextIO, now: datetime) -> bool:
    """Print the days left on the tunnel certificate; False if it is unreadable or expired."""
    if config.tunnel is None:
        return True
    try:
        certificate = read_certificate(config.tunnel.cert)
    except (OSError, ValueError) as exc:
        print(f"tunnel.cert: FAILED: cannot read {config.tunnel.cert}: {exc}", file=out)
        return False
    expired = expired_certificate(config.tunnel, now)
    if expired is not None:
        print(f"tunnel.cert: FAILED: {expired}", file=out)
        return False
    left = days_left(certificate, now)
    until = f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    print(f"tunnel.cert: ok ({left:.1f} days left, until {until}; serial "
          f"{certificate.serial_number:x})", file=out)  # fmt: skip
    return True


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
