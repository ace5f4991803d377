"""Checks that need the whole config: names must point at something, scopes must mean something.

Pure functions over a validated `AgentConfig`; each problem carries the key path it is about.
"""

from __future__ import annotations

import re

from agent.config.model import RESERVED_RESOURCE_NAMES, AgentConfig
from agent.config.yamltree import Path_

Found = tuple[Path_, str]
_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def check_references(config: AgentConfig) -> list[Found]:
    found: list[Found] = []
    sources = ", ".join(sorted(config.sources))
    owners = [
        *(("resources", n, r.source) for n, r in config.resources.items()),
        *(("queries", n, q.source) for n, q in config.queries.items()),
        *(("procedures", n, p.source) for n, p in config.procedures.items()),
    ]
    for section, name, source in owners:
        if source not in config.sources:
            found.append(
                ((section, name, "source"), f"no source named {source!r} (sources: {sources})")
            )
    for name, resource in config.resources.items():
        if name in RESERVED_RESOURCE_NAMES:
            found.append(((("resources", name)), f"{name!r} is reserved; choose another name"))
        if resource.key and resource.columns:
            for column in resource.key:
                if column not in resource.columns:
                    found.append(
                        (("resources", name, "key"), f"key column {column!r} is not in columns")
                    )
        writes = set(resource.operations) - {"read"}
        if writes and not resource.key:
            found.append(
                (
                    ("resources", name, "operations"),
                    f"{', '.join(sorted(writes))} need a key; add key: [...] to the resource",
                )
            )
    found += _query_params(config)
    found += _scopes(config)
    return found


def _query_params(config: AgentConfig) -> list[Found]:
    found: list[Found] = []
    for name, query in config.queries.items():
        used = set(_PLACEHOLDER.findall(query.sql))
        for missing in sorted(used - set(query.params)):
            found.append(
                (("queries", name, "sql"), f":{missing} is used but not declared in params")
            )
        for unused in sorted(set(query.params) - used):
            found.append((("queries", name, "params", unused), f"{unused!r} is not used in sql"))
    return found


def _scopes(config: AgentConfig) -> list[Found]:
    known = {f"{r}:{a}" for r in config.resources for a in ("read", "write")}
    known |= {f"queries:{q}" for q in config.queries}
    known |= {f"procedures:{p}" for p in config.procedures}
    found: list[Found] = []
    for i, key in enumerate(config.auth.api_keys):
        for j, scope in enumerate(key.scopes):
            if scope not in known:
                found.append(
                    (
                        ("auth", "api_keys", i, "scopes", j),
                        f"scope {scope!r} names nothing this agent exposes (use "
                        "<resource>:read, <resource>:write, queries:<name>, procedures:<name>)",
                    )
                )
    return found
