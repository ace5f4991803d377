"""Finds adapters by name: the built-ins and third-party packages, through the same mechanism.

A third-party adapter is a distribution that declares an entry point in the group
`bridgehead.adapters` (`name = "package.module:Factory"`); the built-ins are listed the same
way in `DEFAULT_ADAPTERS`, so they get no special path.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from bridgehead.adapters.base import AdapterFactory

ENTRY_POINT_GROUP = "bridgehead.adapters"
DEFAULT_ADAPTERS: dict[str, str] = {
    "sqlite": "bridgehead.adapters.sqlite:SQLiteAdapter",
    "odbc": "bridgehead.adapters.odbc:ODBCAdapter",
}


@cache
def available() -> dict[str, str]:
    """Adapter name → `module:attribute`, built-ins first, installed plugins after."""
    found = dict(DEFAULT_ADAPTERS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def load(name: str) -> AdapterFactory:
    module_name, _, attribute = available()[name].partition(":")
    factory: AdapterFactory = getattr(importlib.import_module(module_name), attribute)
    return factory
