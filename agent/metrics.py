"""Metrics counted below the admin layer (the catalog's encoders). The counter belongs to
no registry of its own: each agent's admin registry (`agent.admin.metrics`) reports it."""

from __future__ import annotations

from prometheus_client import Counter

FALLBACK_VALUES = Counter(
    "bridgehead_fallback_values",
    "Values served as the database's text because their column's type cannot carry them "
    "(an infinity date, a zero date, text in a SQLite INTEGER column).",
    ["resource", "column"],
    registry=None,
)
