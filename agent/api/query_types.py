"""The result columns of named queries, typed as the database describes them, so that their
values are served by the same mapping as a resource's (timestamptz with its offset, SQLite
NUMERIC as an exact decimal, MariaDB's BOOLEAN as a boolean).

A query is described once, on first use, by the dialect's statements (a temporary view or
table made from the query with its parameters as typed NULLs, read back and dropped). A query
the database cannot describe so (it writes, or the session may not create temporary objects)
is served as the driver returns its values, as before, and the reason is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.errors import SourceError, SourceUnavailable
from bridgehead.adapters.types import ColumnType
from bridgehead.agent.config.model import QueryConfig
from bridgehead.agent.metrics import FALLBACK_VALUES
from bridgehead.agent.named_sql import marked
from bridgehead.agent.values import Encoder, encoder

log = logging.getLogger("bridgehead.queries")
Encoders = Mapping[str, Encoder | None]


@dataclass(frozen=True)
class QueryShape:
    """A named query's result columns as the database describes them, and their encoders."""

    columns: tuple[tuple[str, ColumnType], ...] = ()
    encoders: Encoders = field(default_factory=dict)

    def fetched(self, sql: str, adapter: Adapter) -> str:
        """The statement to run: the query itself, or the query wrapped so that columns the
        driver would convert wrongly come as text (the dialect's rule for resources too)."""
        if not self.columns:
            return sql
        return adapter.dialect.wrap_query(sql, self.columns) or sql


UNDESCRIBED = QueryShape()


class QueryTypes:
    """Each named query's shape, learnt on first use."""

    def __init__(self) -> None:
        self._known: dict[str, QueryShape] = {}

    async def shape(self, name: str, query: QueryConfig, adapter: Adapter) -> QueryShape:
        if name not in self._known:
            try:
                self._known[name] = await _describe(name, query, adapter)
            except SourceUnavailable:
                return UNDESCRIBED  # not learnt now; asked again next time
            except SourceError as exc:
                log.info("queries.%s: its columns cannot be described (%s)", name, exc.internal)
                self._known[name] = UNDESCRIBED
        return self._known[name]


async def _describe(name: str, query: QueryConfig, adapter: Adapter) -> QueryShape:
    dialect = adapter.dialect
    sql = marked(query.sql, lambda param: dialect.typed_null(query.params[param]))
    steps = dialect.describe_query(sql)
    if steps is None:
        return UNDESCRIBED
    sets = await adapter.call([(step, ()) for step in steps], 10_000)
    described = sets[-1].rows if sets else []
    columns = tuple((str(row[0]), dialect.column_type(str(row[1] or ""))) for row in described)
    encoders: dict[str, Encoder | None] = {}
    for column, column_type in columns:
        counter = FALLBACK_VALUES.labels(f"queries/{name}", column).inc
        encoders[column] = encoder(column_type.kind, dialect.decoder(column_type), counter)
    return QueryShape(columns, encoders)
