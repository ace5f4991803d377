"""Named queries and procedures: the only way to run SQL the owner wrote.

Parameters are checked against their declared types before anything reaches the database:
a missing, unknown or ill-typed parameter is a 400 naming it. The adapter writes the
placeholders and binds the values; nothing here makes SQL text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from bridgehead.adapters.base import Adapter, ResultSet
from bridgehead.adapters.sql import Call, Query
from bridgehead.adapters.types import ColumnType, Kind, TableRef, ValueRules
from bridgehead.agent.api import export
from bridgehead.agent.api.message import ApiResponse
from bridgehead.agent.api.query_types import Encoders, QueryTypes, as_query
from bridgehead.agent.api.writes import parse_body
from bridgehead.agent.config.model import ProcedureConfig, QueryConfig
from bridgehead.agent.values import dumps, from_json
from bridgehead.common.errors import BadRequest

JSON = "application/json"
MAX_PROCEDURE_ROWS = 10_000


def bind_params(
    what: str, declared: Mapping[str, str], body: bytes, rules: ValueRules
) -> dict[str, Any]:
    """The body's parameters as canonical values, bounded by their declared types and the
    source's value rules; 400 for a missing, unknown or bad one."""
    given = parse_body(body) if body.strip() else {}
    if not isinstance(given, dict):
        raise BadRequest(f"{what} takes a JSON object of parameters")
    for name in given:
        if name not in declared:
            names = ", ".join(declared) or "none"
            raise BadRequest(f"unknown parameter {name!r}; parameters of {what}: {names}")
    values: dict[str, Any] = {}
    for name, kind in declared.items():
        if name not in given:
            raise BadRequest(f"missing parameter {name!r} ({kind})")
        try:
            values[name] = from_json(ColumnType(Kind(kind), kind, rules=rules), given[name])
        except ValueError as exc:
            raise BadRequest(f"parameter {name!r}: {exc}") from None
    return values


def _items(result: ResultSet, limit: int, encoders: Encoders | None = None) -> list[dict[str, Any]]:
    items = [dict(zip(result.columns, row, strict=False)) for row in result.rows[:limit]]
    for column in result.columns:
        fix = (encoders or {}).get(column)
        if fix is None:
            continue
        for item in items:
            if item[column] is not None:
                item[column] = fix(item[column])
    return items


async def run_query(
    name: str, query: QueryConfig, adapter: Adapter, body: bytes, types: QueryTypes
) -> ApiResponse:
    values = bind_params(f"queries/{name}", query.params, body, adapter.value_rules)
    shape = await types.shape(name, query, adapter)
    result = await adapter.run_query(as_query(query, values, shape), query.max_rows + 1)
    items = _items(result, query.max_rows, shape.encoders)
    headers = {"Content-Type": JSON}
    if len(result.rows) > query.max_rows:
        headers["X-Truncated"] = export.truncated_note(query.max_rows)
    return ApiResponse(200, headers, dumps({"items": items}), rows=len(items))


def stream_query(
    name: str,
    query: QueryConfig,
    adapter: Adapter,
    body: bytes,
    *,
    media: str,
    types: QueryTypes,
) -> ApiResponse:
    """A named query's rows (up to max_rows) streamed as NDJSON or CSV, batch by batch.

    On PostgreSQL through a server-side cursor; elsewhere through the driver's own cursor
    (MariaDB's Connector/ODBC holds a whole result: see the README)."""
    values = bind_params(f"queries/{name}", query.params, body, adapter.value_rules)
    response = ApiResponse(200, {"Content-Type": export.CONTENT_TYPES[media]})
    encode = export.encoder_for(media, query.csv_formulas)

    async def chunks() -> AsyncIterator[bytes]:
        first = True
        shape = await types.shape(name, query, adapter)
        encoders = shape.encoders
        statement = as_query(query, values, shape)
        async for result in adapter.stream_query(statement, export.CHUNK_ROWS):
            header = b""
            if first:
                header = export.csv_header(result.columns) if media == export.CSV else b""
                if await _cut(adapter, statement, result, query.max_rows):
                    response.headers["X-Truncated"] = export.truncated_note(query.max_rows)
                first = False
            rows = result.rows[: query.max_rows - response.rows]
            items = _items(ResultSet(result.columns, rows), len(rows), encoders)
            yield header + encode(items, result.columns)
            response.rows += len(rows)
            if response.rows >= query.max_rows:
                return

    response.body = chunks()
    return response


async def _cut(adapter: Adapter, query: Query, first: ResultSet, max_rows: int) -> bool:
    """Whether max_rows cuts a streamed query's rows, known before its first byte: from the
    first batch when it holds the cap or the whole result, else by asking the database for a
    row past max_rows (the statement runs once more; where the DBMS cannot skip rows, a cut
    is assumed)."""
    if len(first.rows) > max_rows:
        return True
    if len(first.rows) < export.CHUNK_ROWS:
        return False
    found = await adapter.query_has_rows_beyond(query, max_rows)
    return True if found is None else found


async def call_procedure(
    name: str, procedure: ProcedureConfig, adapter: Adapter, body: bytes
) -> ApiResponse:
    inputs = {n: p.type for n, p in procedure.params.items() if p.direction != "out"}
    values = bind_params(f"procedures/{name}", inputs, body, adapter.value_rules)
    params = tuple((n, p.direction) for n, p in procedure.params.items())
    call = Call(TableRef.parse(procedure.name), params, values)
    called = await adapter.call_procedure(call, MAX_PROCEDURE_ROWS)
    last = called.output
    output = _items(last, 1)[0] if last is not None and last.rows else {}
    result_sets = [_items(s, MAX_PROCEDURE_ROWS) for s in called.result_sets]
    rows = sum(len(s) for s in result_sets)
    data = {"result_sets": result_sets, "output": output}
    return ApiResponse(200, {"Content-Type": JSON}, dumps(data), rows=rows)
