"""Checks that need the whole config: names must point at something, scopes must mean something.

These run on the substituted YAML data, not on the validated models, so that they report
their problems even when some other part of the file fails validation: every problem at
once. Values of the wrong shape are skipped here; validation reports them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from bridgehead.agent.named_sql import placeholders
from bridgehead.common.config.yamltree import Path_

Found = tuple[Path_, str]
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")
RESERVED_RESOURCE_NAMES = frozenset(
    {"queries", "procedures", "openapi.json", "openapi", "jobs", "events"}
)
NAMED_SECTIONS = ("sources", "resources", "queries", "procedures", "jobs")
TRACKING_ELSEWHERE = (
    "capture: change_tracking is SQL Server's Change Tracking, and this source is {dbms}; "
    "use capture: triggers, or capture: poll with a watermark: column"
)


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _entries(data: Mapping[str, Any], section: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, entry in _section(data, section).items():
        if isinstance(entry, dict):
            yield name, entry


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def check_references(data: Mapping[str, Any]) -> list[Found]:
    return [
        *_bad_names(data), *_sources(data), *_resources(data), *_queries(data), *_scopes(data),
        *_jobs(data),
    ]  # fmt: skip


def _jobs(data: Mapping[str, Any]) -> Iterator[Found]:
    """An export's `from:`, an import's `from:` and `into:`, name what this config serves."""
    for name, job in _entries(data, "jobs"):
        imported = job.get("import")
        if isinstance(imported, dict):
            yield from _import_names(data, name, imported)
        export = job.get("export")
        source = export.get("from") if isinstance(export, dict) else None
        if isinstance(source, str):
            source = {"resource": source}
        if not isinstance(source, dict):
            continue
        for kind, section in (("resource", "resources"), ("query", "queries")):
            target = source.get(kind)
            if isinstance(target, str) and target not in _section(data, section):
                known = ", ".join(_section(data, section)) or "none"
                yield (
                    ("jobs", name, "export", "from"),
                    f"no {kind} named {target!r} to export (the {section}: here: {known})",
                )


def _bad_names(data: Mapping[str, Any]) -> Iterator[Found]:
    for section in NAMED_SECTIONS:
        for name in _section(data, section):
            if not NAME_PATTERN.match(name):
                yield (
                    (section, name),
                    f"{name!r} is not a usable name: use letters, digits, _ and -, "
                    "starting with a letter or _",
                )
    for name in _section(data, "resources"):
        if name in RESERVED_RESOURCE_NAMES:
            yield ("resources", name), f"{name!r} is reserved; choose another name"


def _sources(data: Mapping[str, Any]) -> Iterator[Found]:
    for name, entry in _entries(data, "sources"):
        for internal in ("adapter", "target"):
            if internal in entry:
                yield (
                    ("sources", name, internal),
                    f"unknown key {internal!r}; check its spelling against the config reference",
                )
    known = _section(data, "sources")
    if not known:
        return  # validation reports the missing sources; every reference would fail too
    listing = ", ".join(sorted(known)) or "none defined"
    for section in ("resources", "queries", "procedures"):
        for name, entry in _entries(data, section):
            source = entry.get("source")
            if isinstance(source, str) and source not in known:
                yield (
                    (section, name, "source"),
                    f"no source named {source!r} (sources: {listing})",
                )


def _resources(data: Mapping[str, Any]) -> Iterator[Found]:
    for name, entry in _entries(data, "resources"):
        key, columns = _names(entry.get("key")), _names(entry.get("columns"))
        if columns:
            for column in key:
                if column not in columns:
                    yield ("resources", name, "key"), f"key column {column!r} is not in columns"
        yield from _tracked_on_sqlite(data, name, entry)


def _tracked_on_sqlite(
    data: Mapping[str, Any], name: str, entry: dict[str, Any]
) -> Iterator[Found]:
    """`capture: change_tracking` is SQL Server's; a SQLite source cannot have it (an ODBC
    source's DBMS is known once connected: `agent.catalog` checks it then)."""
    events = entry.get("events")
    if not isinstance(events, dict) or events.get("capture") != "change_tracking":
        return
    named = entry.get("source")
    source = _section(data, "sources").get(named) if isinstance(named, str) else None
    if isinstance(source, dict) and "sqlite" in source:
        yield ("resources", name, "events", "capture"), TRACKING_ELSEWHERE.format(dbms="SQLite")


def _queries(data: Mapping[str, Any]) -> Iterator[Found]:
    for name, entry in _entries(data, "queries"):
        sql, params = entry.get("sql"), entry.get("params") or {}
        if not isinstance(sql, str) or not isinstance(params, dict):
            continue
        used = placeholders(sql)
        for missing in sorted(used - set(params)):
            yield ("queries", name, "sql"), f":{missing} is used but not declared in params"
        for unused in sorted(set(params) - used):
            yield ("queries", name, "params", unused), f"{unused!r} is not used in sql"


def _scopes(data: Mapping[str, Any]) -> Iterator[Found]:
    known = {f"{r}:{a}" for r in _section(data, "resources") for a in ("read", "write")}
    known |= {f"queries:{q}" for q in _section(data, "queries")}
    known |= {f"procedures:{p}" for p in _section(data, "procedures")}
    known |= {f"jobs:{j}" for j in _section(data, "jobs")} | {"events:read"}
    keys = _section(data, "auth").get("api_keys")
    for i, key in enumerate(keys if isinstance(keys, list) else []):
        scopes = key.get("scopes") if isinstance(key, dict) else None
        for j, scope in enumerate(scopes if isinstance(scopes, list) else []):
            if isinstance(scope, str) and scope not in known:
                yield (
                    ("auth", "api_keys", i, "scopes", j),
                    f"scope {scope!r} names nothing this agent exposes (use "
                    "<resource>:read, <resource>:write, queries:<name>, procedures:<name>, "
                    "jobs:<name>, events:read)",
                )


def _import_names(data: Mapping[str, Any], name: str, imported: dict[str, Any]) -> Iterator[Found]:
    into = imported.get("into")
    if isinstance(into, str) and into not in _section(data, "resources"):
        known = ", ".join(_section(data, "resources")) or "none"
        yield ("jobs", name, "import", "into"), f"no resource named {into!r} (resources: {known})"
    source = imported.get("from")
    for kind, section in (("resource", "resources"), ("query", "queries")):
        target = source.get(kind) if isinstance(source, dict) else None
        if isinstance(target, str) and target not in _section(data, section):
            known = ", ".join(_section(data, section)) or "none"
            yield (
                ("jobs", name, "import", "from", kind),
                f"no {kind} named {target!r} to import from ({section}: {known})",
            )
