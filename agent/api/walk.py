"""A walk over a resource's rows in keyset order: by key, or by (a column that grows when a
row changes, key), with an upper bound frozen when a run starts; for export jobs and for
change events captured by polling alike.

Rules: rows are read strictly after the last position taken, never by OFFSET, so rows
sharing one value of the column are neither split nor repeated at a page boundary; the
bound is the start minus a lag for a time (a late-committing transaction is not passed
over), the largest value present for a number; rows whose column is NULL are not walked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridgehead.adapters.sql import And, Compare, Condition, IsNull, Not, Op, OrderBy, Select
from bridgehead.adapters.types import Column, Kind
from bridgehead.agent.api.filters import after
from bridgehead.agent.api.reads import text_columns
from bridgehead.agent.catalog import Resource

CLOCK_KINDS = frozenset({Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.DATE})


class WalkRefused(Exception):
    """The resource cannot be walked so; the message says what to change."""


@dataclass(frozen=True)
class Walk:
    """How the rows of one export are read: the columns, the keyset order, the bound."""

    resource: Resource
    columns: tuple[Column, ...]
    order: tuple[OrderBy, ...]
    incremental: Column | None

    @classmethod
    def of(cls, resource: Resource, incremental: str | None) -> Walk:
        """The walk of `resource`'s rows: by key, or by (`incremental`, key)."""
        if not resource.key:
            raise WalkRefused(
                f"resource {resource.name!r} has no key; give it key: so its rows can be "
                "walked in order"
            )
        keys = tuple(OrderBy(c.name) for c in resource.key)
        if incremental is None:
            return cls(resource, resource.columns, keys, None)
        column = resource.table.column(incremental)
        if column is None:
            names = ", ".join(c.name for c in resource.table.columns)
            raise WalkRefused(f"{incremental!r} is not a column of {resource.name} ({names})")
        if column.type.kind in (Kind.BINARY, Kind.UNKNOWN, Kind.BOOLEAN):
            raise WalkRefused(
                f"{column.name!r} is {column.type.kind}; name a timestamp or a "
                "number that grows whenever a row changes"
            )
        first = OrderBy(column.name, nullable=column.nullable)
        return cls(resource, resource.columns, (first, *keys), column)

    def fetched(self) -> list[Column]:
        """The served columns, then any ordering column not among them."""
        names = {c.name for c in self.columns}
        extra = [self.resource.table.column(o.column) for o in self.order]
        return [*self.columns, *(c for c in extra if c is not None and c.name not in names)]

    async def bound(self, now: dt.datetime, lag: float) -> Any:
        """The frozen upper bound of the incremental column: the run's start minus `lag` for
        a time, the largest value present for a number (counters do not commit late)."""
        column = self.incremental
        if column is None:
            return None
        if column.type.kind in CLOCK_KINDS:
            edge = now - dt.timedelta(seconds=lag)
            if column.type.kind is Kind.TIMESTAMP:
                return edge.astimezone(dt.UTC).replace(tzinfo=None)
            if column.type.kind is Kind.DATE:
                return edge.date() - dt.timedelta(days=1)
            return edge
        largest = Select(
            self.resource.table.ref, (column.name,), where=Not(IsNull(column.name)),
            order=(OrderBy(column.name, descending=True),), limit=1,
        )  # fmt: skip
        rows = await self.resource.adapter.select(largest)
        return rows[0][0] if rows else None

    def select(self, position: list[Any] | None, bound: Any, limit: int) -> Select:
        conditions: list[Condition] = []
        if self.incremental is not None:
            conditions.append(Compare(self.incremental.name, Op.LTE, bound))
        if position is not None:
            beyond = after(self.order, position)
            if beyond is not None:
                conditions.append(beyond)
        fetch = self.fetched()
        return Select(
            self.resource.table.ref, tuple(c.name for c in fetch),
            where=And(tuple(conditions)) if conditions else None, order=self.order,
            limit=limit, as_text=text_columns(self.resource, fetch),
        )  # fmt: skip

    def position(self, row: Sequence[Any]) -> list[Any]:
        index = {c.name: i for i, c in enumerate(self.fetched())}
        return [row[index[o.column]] for o in self.order]
