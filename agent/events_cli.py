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

A resource with `events: {capture: change_tracking}` (SQL Server) gets Change Tracking
(`agent.events.tracking`) instead: install turns it on for the database (if off) and the
table, uninstall off for the table, and with --disable-database-tracking for the database too
(refused while another resource of the config on that source still reads it). These
statements run each on its own, outside a transaction (SQL Server refuses ALTER DATABASE in
one); each is guarded, so a failure part-way is mended by running the command again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TextIO

from bridgehead.adapters import registry
from bridgehead.adapters.base import Adapter
from bridgehead.adapters.errors import SourceError
from bridgehead.adapters.sql import Query
from bridgehead.agent.catalog import Catalog
from bridgehead.agent.config.model import AgentConfig, ResourceConfig
from bridgehead.agent.events.ddl import Capture, install_statements, uninstall_statements
from bridgehead.agent.events.tracking import disable_statements, enable_statements
from bridgehead.agent.sources import source_settings
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
TRACKING_GRANTS = (
    "ALTER on each tracked table, and ALTER on the database while its change tracking is off "
    "(db_owner has both)"
)
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
    *,
    database_tracking: bool = False,
) -> int:
    if drop_outbox and action != "uninstall":
        raise UsageError("--drop-outbox is for bridgehead events uninstall")
    if database_tracking and action != "uninstall":
        raise UsageError("--disable-database-tracking is for bridgehead events uninstall")
    chosen = _chosen(config, action, names)
    if drop_outbox:
        _refuse_shared_outbox(config, chosen)
    if database_tracking:
        _refuse_shared_tracking(config, chosen)
    flags = {"drop_outbox": drop_outbox, "database_tracking": database_tracking}
    lines: list[str] = []
    try:
        asyncio.run(_run(config, action, chosen, yes=yes, flags=flags, lines=lines))
    finally:  # what was planned (and done) is shown even when a source failed
        for line in lines:
            print(line, file=out)
    return 0


def _triggered(resource: ResourceConfig) -> bool:
    """Whether the resource's changes are captured by triggers (not by polling)."""
    return resource.events is not None and resource.events.capture == "triggers"


def _tracked(resource: ResourceConfig) -> bool:
    """Whether the resource's changes are read from SQL Server's Change Tracking."""
    return resource.events is not None and resource.events.capture == "change_tracking"


def _installed(resource: ResourceConfig) -> bool:
    """Whether the resource's capture has a database side to install."""
    return _triggered(resource) or _tracked(resource)


def _chosen(config: AgentConfig, action: str, names: Sequence[str]) -> list[str]:
    """The resources to act on, in the config's order."""
    if not names:
        chosen = [n for n, r in config.resources.items() if _installed(r)]
        if not chosen:
            raise UsageError(
                "no resource has events: {capture: triggers} (or change_tracking); add it to "
                "the resources whose changes are to be captured, or name them with --resource"
            )
        return chosen
    for name in names:
        resource = config.resources.get(name)
        if resource is None:
            known = ", ".join(config.resources) or "none"
            raise UsageError(f"no resource {name!r} in the config (resources: {known})")
        if action == "install" and not _installed(resource):
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


def _refuse_shared_tracking(config: AgentConfig, chosen: Sequence[str]) -> None:
    sources = {config.resources[n].source for n in chosen}
    for name, resource in config.resources.items():
        if _tracked(resource) and resource.source in sources and name not in chosen:
            raise UsageError(
                "--disable-database-tracking would turn change tracking off for the database "
                f"that resources.{name} still reads; uninstall it too (add --resource {name}) "
                "or leave out --disable-database-tracking"
            )


async def _run(
    config: AgentConfig,
    action: str,
    chosen: Sequence[str],
    *,
    yes: bool,
    flags: dict[str, bool],
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
            tracked = [c for c in captures if _tracked(config.resources[c.resource])]
            triggered = [c for c in captures if c not in tracked]
            statements = _trigger_statements(adapter, source, action, triggered, flags)
            tracking = _tracking_statements(action, tracked, flags)
            dialect = adapter.dialect.name
            lines.append(f"-- sources.{source} ({dialect}): {action} for {', '.join(names)}")
            lines += [f"{statement}\n" for statement in (*statements, *tracking)]
            if yes:
                if statements:
                    await _apply(adapter, source, action, statements)
                await _apply_each(adapter, source, action, tracking)
                count = len(statements) + len(tracking)
                lines.append(f"sources.{source}: {action} done ({count} statements)")
        finally:
            await adapter.close()
    if not yes:
        lines.append("nothing was run; add --yes to run these statements")


def _trigger_statements(
    adapter: Adapter,
    source: str,
    action: str,
    captures: Sequence[Capture],
    flags: dict[str, bool],
) -> list[str]:
    """The trigger capture's statements for these resources (none for none)."""
    if not captures:
        return []
    dialect = adapter.dialect.name
    try:
        if action == "install":
            return install_statements(dialect, captures)
        return uninstall_statements(dialect, captures, drop_outbox=flags["drop_outbox"])
    except ValueError as exc:
        raise UsageError(f"sources.{source}: {exc}") from None


def _tracking_statements(
    action: str, captures: Sequence[Capture], flags: dict[str, bool]
) -> list[str]:
    """Change Tracking's statements for these resources (none for none)."""
    if not captures:
        return []
    if action == "install":
        return enable_statements(captures)
    return disable_statements(captures, database=flags["database_tracking"])


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
        grants = GRANTS.get(adapter.dialect.name, "the rights to create tables and triggers")
        raise _refused(exc, source, action, grants) from None


async def _apply_each(
    adapter: Adapter, source: str, action: str, statements: Sequence[str]
) -> None:
    """Run each statement on its own, outside a transaction (Change Tracking's ALTER
    DATABASE may not run in one); a refusal becomes one sentence."""
    for statement in statements:
        try:
            await adapter.run_query(Query((statement,)), 1)
        except SourceError as exc:
            raise _refused(exc, source, action, TRACKING_GRANTS) from None


def _refused(exc: SourceError, source: str, action: str, grants: str) -> Failure:
    """The failure to report for a statement the database refused."""
    said = _said(exc)
    doing = "install" if action == "install" else "remove"
    if any(m in said.lower() for m in DENIED_MARKERS):
        return Failure(
            f"sources.{source}: the database user may not {doing} the change capture; "
            f"it needs {grants} (the database said: {said})"
        )
    return Failure(f"sources.{source}: {action} failed: {said}")


def _said(exc: SourceError) -> str:
    """The driver's message, on one line and short (it never holds the connection string)."""
    text = " ".join((exc.internal or exc.public_detail).split())
    return text if len(text) <= 300 else text[:297] + "..."
