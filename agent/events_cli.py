"""`bridgehead events install | uninstall -c agent.yaml [--resource NAME]... [--yes]
[--drop-outbox]`: the trigger capture's database side (`agent.events.ddl`) on each source.

The resources are those named with --resource, or else every resource with `events:
{capture: triggers}`; install takes only such resources, uninstall any resource (so that
triggers can be removed after `events:` left the config). Every statement is printed, per
source, each followed by an empty line; only with --yes are they run, each source's in one
transaction. PostgreSQL, SQLite, SQL Server and Db2 run DDL in transactions, so a failure
there leaves nothing made; MySQL/MariaDB and Oracle commit each DDL statement as it runs, so
a failure there may leave the outbox table and the triggers made before it: run install again
once the grant is there, or uninstall. A statement the database refuses for want of a right
is one sentence naming the source and the grant it lacks (exit 1).

--drop-outbox (uninstall only) also drops the outbox table, and is refused while another
resource of the config on the same source still captures into it (triggers that write to a
dropped table make the legacy application's writes fail). Triggers the config does not know
of are not looked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TextIO

from bridgehead.adapters import registry
from bridgehead.adapters.base import Adapter
from bridgehead.adapters.errors import SourceError
from bridgehead.agent.app import source_settings
from bridgehead.agent.catalog import Catalog
from bridgehead.agent.config.model import AgentConfig, ResourceConfig
from bridgehead.agent.events.ddl import Capture, install_statements, uninstall_statements
from bridgehead.common.commands import Failure, UsageError

GRANTS = {
    "postgresql": "CREATE on the tables' schema (for the outbox and the trigger functions) and "
    "ownership of each captured table (TRIGGER alone cannot replace or drop a trigger)",
    "mysql": "CREATE and TRIGGER on the database (and, with binary logging on, SUPER or "
    "log_bin_trust_function_creators=1)",
    "sqlite": "write access to the database file and its folder",
    "mssql": "CREATE TABLE in the database and ALTER on the tables' schema",
    "oracle": "CREATE TABLE, CREATE TRIGGER (CREATE ANY TRIGGER for another user's tables) and "
    "a quota on the tablespace",
    "db2": "CREATETAB on the database, CREATEIN on the schema and ALTER on each captured table",
}
DENIED_MARKERS = (
    "permission denied", "must be owner", "42501", "access denied", "command denied",
    "super privilege", "insufficient privilege", "ora-01031", "ora-01950", "sql0551n",
    "sql0552n", "do not have permission", "readonly database", "read-only database",
)  # fmt: skip
"""Fragments of the drivers' messages for a statement refused for want of a right."""


def events_command(  # noqa: PLR0917 - as the CLI's table of commands calls it
    config: AgentConfig,
    action: str,
    names: Sequence[str],
    yes: bool,
    drop_outbox: bool,
    out: TextIO,
) -> int:
    if drop_outbox and action != "uninstall":
        raise UsageError("--drop-outbox is for bridgehead events uninstall")
    chosen = _chosen(config, action, names)
    if drop_outbox:
        _refuse_shared_outbox(config, chosen)
    lines: list[str] = []
    try:
        asyncio.run(_run(config, action, chosen, yes=yes, drop_outbox=drop_outbox, lines=lines))
    finally:  # what was planned (and done) is shown even when a source failed
        for line in lines:
            print(line, file=out)
    return 0


def _triggered(resource: ResourceConfig) -> bool:
    """Whether the resource's changes are captured by triggers (not by polling)."""
    return resource.events is not None and resource.events.capture == "triggers"


def _chosen(config: AgentConfig, action: str, names: Sequence[str]) -> list[str]:
    """The resources to act on, in the config's order."""
    if not names:
        chosen = [n for n, r in config.resources.items() if _triggered(r)]
        if not chosen:
            raise UsageError(
                "no resource has events: {capture: triggers}; add it to the resources whose "
                "changes are to be captured, or name them with --resource"
            )
        return chosen
    for name in names:
        resource = config.resources.get(name)
        if resource is None:
            known = ", ".join(config.resources) or "none"
            raise UsageError(f"no resource {name!r} in the config (resources: {known})")
        if action == "install" and not _triggered(resource):
            raise UsageError(
                f"resources.{name} has no events: {{capture: triggers}}; add it to capture "
                "its changes"
            )
    return [n for n in config.resources if n in names]


def _refuse_shared_outbox(config: AgentConfig, chosen: Sequence[str]) -> None:
    sources = {config.resources[n].source for n in chosen}
    for name, resource in config.resources.items():
        if _triggered(resource) and resource.source in sources and name not in chosen:
            raise UsageError(
                f"--drop-outbox would drop the outbox that resources.{name} still captures "
                "into; uninstall it too (add --resource " + name + ") or leave out --drop-outbox"
            )


async def _run(
    config: AgentConfig,
    action: str,
    chosen: Sequence[str],
    *,
    yes: bool,
    drop_outbox: bool,
    lines: list[str],
) -> None:
    by_source: dict[str, list[str]] = {}
    for name in chosen:
        by_source.setdefault(config.resources[name].source, []).append(name)
    for source, names in by_source.items():
        settings = source_settings(source, config.sources[source], config.base_dir)
        adapter = registry.load(settings.adapter)(settings)
        try:
            captures = await _captures(config, source, names, adapter)
            dialect = adapter.dialect.name
            try:
                statements = (
                    install_statements(dialect, captures)
                    if action == "install"
                    else uninstall_statements(dialect, captures, drop_outbox=drop_outbox)
                )
            except ValueError as exc:
                raise UsageError(f"sources.{source}: {exc}") from None
            lines.append(f"-- sources.{source} ({dialect}): {action} for {', '.join(names)}")
            lines += [f"{statement}\n" for statement in statements]
            if yes:
                await _apply(adapter, source, action, statements)
                lines.append(f"sources.{source}: {action} done ({len(statements)} statements)")
        finally:
            await adapter.close()
    if not yes:
        lines.append("nothing was run; add --yes to run these statements")


async def _captures(
    config: AgentConfig, source: str, names: Sequence[str], adapter: Adapter
) -> list[Capture]:
    try:
        await adapter.open()
    except SourceError as exc:
        raise Failure(f"sources.{source}: cannot connect: {_said(exc)}") from None
    catalog = Catalog({n: config.resources[n] for n in names}, {source: adapter})
    try:
        problems = await catalog.load()
    except SourceError as exc:
        raise Failure(f"sources.{source}: cannot read the tables: {_said(exc)}") from None
    if problems:
        found = "; ".join(str(p) for p in problems)
        raise UsageError(f"{found} (see bridgehead check)")
    resolved = {r.name: r for r in catalog.resolved()}
    return [
        Capture(n, resolved[n].table.ref, tuple(c.name for c in resolved[n].key)) for n in names
    ]


async def _apply(adapter: Adapter, source: str, action: str, statements: Sequence[str]) -> None:
    """Run the statements in one transaction; a refusal becomes one sentence."""
    try:
        async with adapter.transaction() as tx:
            for statement in statements:
                await tx.execute(statement, ())
    except SourceError as exc:
        said = _said(exc)
        dialect = adapter.dialect.name
        doing = "install" if action == "install" else "remove"
        if any(m in said.lower() for m in DENIED_MARKERS):
            grants = GRANTS.get(dialect, "the rights to create tables and triggers")
            raise Failure(
                f"sources.{source}: the database user may not {doing} the change capture; "
                f"it needs {grants} (the database said: {said})"
            ) from None
        raise Failure(f"sources.{source}: {action} failed: {said}") from None


def _said(exc: SourceError) -> str:
    """The driver's message, on one line and short (it never holds the connection string)."""
    text = " ".join((exc.internal or exc.public_detail).split())
    return text if len(text) <= 300 else text[:297] + "..."
