"""A named query's rows for a job: all of them (the query's own `max_rows` bounds API answers,
not jobs), typed as the API types them (`agent.api.query_types`), batch by batch from the
source's cursor. A job cannot give a query parameters, so only queries without any serve.

A query has no keyset a job could continue from, so a resumed run reads it again from the
start and skips the rows it had already taken: give its SQL an ORDER BY that is total (ends
with a unique column), or a resumed run may skip or repeat rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from bridgehead.adapters.base import Adapter
from bridgehead.agent.api.query_types import QueryTypes, as_query
from bridgehead.agent.config.model import QueryConfig
from bridgehead.agent.values import dumps

BATCH = 1000


class QueryRefused(ValueError):
    """The named query cannot feed a job; the message says why."""


async def query_rows(
    name: str, query: QueryConfig, adapter: Adapter, types: QueryTypes, skip: int = 0
) -> AsyncIterator[list[dict[str, Any]]]:
    """The query's rows as JSON-ready dicts, in batches, after the first `skip`."""
    if query.params:
        raise QueryRefused(
            f"query {name!r} takes parameters ({', '.join(query.params)}); a job runs only "
            "queries without any"
        )
    shape = await types.shape(name, query, adapter)
    statement = as_query(query, {}, shape)
    async for result in adapter.stream_query(statement, BATCH):
        rows = result.rows
        if skip:
            taken = min(skip, len(rows))
            rows, skip = rows[taken:], skip - taken
        if not rows:
            continue
        items = []
        for row in rows:
            item = dict(zip(result.columns, row, strict=False))
            for column, fix in shape.encoders.items():
                if fix is not None and item.get(column) is not None:
                    item[column] = fix(item[column])
            items.append(item)
        yield orjson.loads(dumps(items))
