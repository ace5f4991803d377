"""`bridgehead check`: after the config validates, connect to every source and compare.

Reports each source's reachability and DBMS, each resource's table and columns, and column
types Bridgehead does not know (served as text). Secrets never appear: ODBC connection
strings are shown with their passwords masked.
"""

from __future__ import annotations

from typing import TextIO

from agent.app import build_adapters, open_sources
from agent.catalog import Catalog, unknown_types
from agent.config.model import AgentConfig


async def run_check(config: AgentConfig, out: TextIO) -> bool:
    adapters = build_adapters(config)
    ok = True
    try:
        failed = await open_sources(adapters)
        for name, adapter in adapters.items():
            if name in failed:
                ok = False
                print(f"sources.{name}: FAILED: {failed[name].internal}", file=out)
            else:
                print(f"sources.{name}: ok ({adapter.dialect.name})", file=out)
        catalog = Catalog(
            {n: r for n, r in config.resources.items() if r.source not in failed}, adapters
        )
        problems = await catalog.load()
        for problem in problems:
            ok = False
            print(f"{problem.path}: FAILED: {problem.message}", file=out)
        for resource in catalog.resolved():
            print(f"resources.{resource.name}: ok ({len(resource.columns)} columns)", file=out)
            for warning in unknown_types(resource):
                print(f"warning: {warning}", file=out)
    finally:
        for adapter in adapters.values():
            await adapter.close()
    return ok
