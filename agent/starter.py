"""`bridgehead init`: a starter agent.yaml written from a live database, that a newcomer can
run at once and then edit.

Rules:
- Every table and view the source's user can see becomes a read-only resource (system
  catalogs left out; `--include` / `--exclude` patterns, matched against `schema.name` and
  `name`, case-insensitively). Its key is the primary key, else the first unique index whose
  columns are all NOT NULL; one without either is still served (lists only), with a comment
  saying what to add.
- No secret is written in the clear: an ODBC password becomes `${env:NAME}` (the variable to
  set is said on stderr), or, when this config's state folder already holds the agent's
  secret key, the whole connection string becomes an `enc:` value.
- One API key is made and printed once; only its SHA-256 is written.
- The text is built here (comments included), checked by loading it as a config, and only
  then written, to a new file: an existing one is never overwritten.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.types import TableEntry, TableInfo
from bridgehead.agent.config.references import NAME_PATTERN, RESERVED_RESOURCE_NAMES

PASSWORD_ATTRIBUTES = ("pwd", "password")


@dataclass(frozen=True)
class Found:
    """One table or view, and the key it is served with (empty: none found)."""

    entry: TableEntry
    key: tuple[str, ...]


async def survey(adapter: Adapter, include: Sequence[str], exclude: Sequence[str]) -> list[Found]:
    found = []
    for entry in await adapter.tables():
        if not _wanted(entry, include, exclude):
            continue
        info = await adapter.describe(entry.ref)
        if info is None:
            continue
        found.append(Found(entry, info.primary_key or await _unique_key(adapter, info)))
    return found


def _wanted(entry: TableEntry, include: Sequence[str], exclude: Sequence[str]) -> bool:
    names = [str(entry.ref).lower(), entry.ref.name.lower()]

    def matches(patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(n, p.lower()) for p in patterns for n in names)

    return (not include or matches(include)) and not matches(exclude)


async def _unique_key(adapter: Adapter, info: TableInfo) -> tuple[str, ...]:
    required = {c.name for c in info.columns if not c.nullable}
    for columns in await adapter.unique_keys(info.ref):
        if columns and set(columns) <= required:
            return columns
    return ()


def hide_password(connection: str, variable: str) -> tuple[str, bool]:
    """The connection string with its password attribute's value replaced by
    `${env:variable}`, and whether it had one."""
    parts, hidden = [], False
    for attribute in split_attributes(connection):
        name, sep, _ = attribute.partition("=")
        secret = bool(sep) and name.strip().lower() in PASSWORD_ATTRIBUTES
        parts.append(f"{name}=${{env:{variable}}}" if secret else attribute)
        hidden = hidden or secret
    return ";".join(parts), hidden


def split_attributes(connection: str) -> list[str]:
    """`A=1;B={x;y}` into its attributes; a braced value may hold `;` (and `}}` for `}`)."""
    attributes, current, braced, i = [], "", False, 0
    while i < len(connection):
        char = connection[i]
        if braced and char == "}":
            if connection[i + 1 : i + 2] == "}":
                current, i = current + "}}", i + 2
                continue
            braced = False
        elif not braced and char == "{" and current.rstrip().endswith("="):
            braced = True
        elif not braced and char == ";":
            attributes.append(current)
            current, i = "", i + 1
            continue
        current, i = current + char, i + 1
    if current:
        attributes.append(current)
    return attributes


def resource_names(found: Sequence[Found]) -> list[str]:
    """A valid, unique resource name for each table, from its name (its schema's too where
    two share a name)."""
    plain = [_name(f.entry.ref.name) for f in found]
    names: list[str] = []
    for item, simple in zip(found, plain, strict=True):
        ref = item.entry.ref
        name = (
            _name(f"{ref.schema}_{ref.name}") if plain.count(simple) > 1 and ref.schema else simple
        )
        while name in names or name in RESERVED_RESOURCE_NAMES:
            name += "_"
        names.append(name)
    return names


def _name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", text)[:60] or "table"
    return name if NAME_PATTERN.match(name) else "_" + name[:59]


@dataclass(frozen=True)
class Starter:
    text: str
    api_key: str


def starter_config(adapter_name: str, target: str, found: Sequence[Found]) -> Starter:
    """The commented agent.yaml serving `found` from one source named `db`."""
    api_key = secrets.token_urlsafe(32)
    names = resource_names(found)
    lines = [
        "# Bridgehead agent config, written by `bridgehead init` from the live database.",
        "# Every table and view is served read-only; add insert, update, delete to a",
        "# resource's operations to allow writes. `bridgehead check -c` this file after edits.",
        "",
        "sources:                      # the database, reached through one pool",
        "  db:",
        f"    {adapter_name}: {json.dumps(target)}",
        "",
        "resources:                    # GET /v1/<name>; /v1/<name>/<key> needs a key",
    ]
    for name, item in zip(names, found, strict=True):
        lines += _resource(name, item)
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    scopes = ", ".join(json.dumps(f"{n}:read") for n in names)
    lines += [
        "",
        "auth:",
        "  api_keys:                   # the key itself was printed once; only its SHA-256 here",
        "    - name: starter",
        f'      key_sha256: "{digest}"',
        f"      scopes: [{scopes}]",
        "",
        "listen: 127.0.0.1:8470        # the local API; loopback only until you say otherwise",
        "admin: 127.0.0.1:8471         # /healthz, /readyz, /status.json, /metrics",
        "",
    ]
    return Starter("\n".join(lines), api_key)


def _resource(name: str, item: Found) -> list[str]:
    ref, kind = item.entry.ref, "view" if item.entry.view else "table"
    lines = [f"  {name}:", "    source: db", f"    table: {json.dumps(str(ref))}   # a {kind}"]
    if item.key:
        lines.append(f"    key: [{', '.join(json.dumps(c) for c in item.key)}]")
    else:
        lines.append(
            "    # no primary key or unique index found: add key: [COLUMN, ...] naming the "
            "columns that tell its rows apart, to read single rows and to write"
        )
    return lines


def relative_to(path: Path, folder: Path) -> str:
    """`path` as the config should name it: relative to the config's folder when inside."""
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())
