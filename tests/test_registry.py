# Adapters are found by name: the built-ins are listed once, in the registry, and loaded the
# same way as a third-party adapter's entry point.
from __future__ import annotations

from importlib.metadata import distribution

from bridgehead.adapters import registry


def test_built_in_adapters_are_listed_once() -> None:
    """sqlite and odbc come from the registry's own list; the distribution declares no entry
    point of its own for them (a second list that could disagree)."""
    assert {"sqlite", "odbc"} <= set(registry.available())
    own = [
        ep
        for ep in distribution("bridgehead").entry_points
        if ep.group == registry.ENTRY_POINT_GROUP
    ]
    assert own == []


def test_an_adapter_loads_by_its_name() -> None:
    """A name resolves to the factory its `module:attribute` names."""
    factory = registry.load("sqlite")
    assert factory.__name__ == "SQLiteAdapter"
