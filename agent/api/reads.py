"""The read operations: a filtered keyset page of a resource, and one row by its key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bridgehead.adapters.base import Row
from bridgehead.adapters.sql import And, Compare, Condition, In, Op, Or, Select
from bridgehead.adapters.types import Column, Kind
from bridgehead.agent.api.coalesce import Coalescer
from bridgehead.agent.api.cursor import CursorCodec, shape_digest
from bridgehead.agent.api.filters import ListPlan, after, parse_select, plan_list
from bridgehead.agent.api.lists import split_items
from bridgehead.agent.api.message import ApiResponse
from bridgehead.agent.catalog import Resource
from bridgehead.agent.errors import NotFound
from bridgehead.agent.values import dumps, parse
from bridgehead.common.errors import BadRequest

JSON = "application/json"
IN_FLIGHT = 2
"""Statements a resource's coalesced lookups run at once; more wait to go together."""
BATCH_MOST = 64
"""The most keys one coalesced lookup statement reads."""


def encode_rows(
    resource: Resource,
    columns: Sequence[Column],
    rows: Sequence[Row],
    skip: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Rows as dicts of encodable values (see `values.dumps`); the hot path of every read.
    Columns in `skip` keep the driver's value (the encoder deals with them at once)."""
    names = [c.name for c in columns]
    fixes = [
        (c.name, fix)
        for c in columns
        if (fix := resource.encoders[c.name]) is not None and c.name not in skip
    ]
    items = [dict(zip(names, row, strict=False)) for row in rows]  # rows may carry more
    for name, fix in fixes:
        for item in items:
            value = item[name]
            if value is not None:
                item[name] = fix(value)
    return items


async def list_rows(
    resource: Resource, query: Sequence[tuple[str, str]], cursors: CursorCodec
) -> ApiResponse:
    plan = plan_list(resource, query)
    shape = shape_digest(resource.name, plan.filter_pairs, plan.order_text)
    conditions, more = start_after(resource, plan, cursors)
    if not more:
        return _page([], None)
    select, fetch = page_select(resource, plan, conditions, plan.limit + 1)
    rows = await resource.adapter.select(select)
    next_cursor = None
    if len(rows) > plan.limit:
        rows = rows[: plan.limit]
        next_cursor = cursors.encode(shape, position(fetch, plan, rows[-1]))
    return _page(encode_rows(resource, plan.select, rows), next_cursor)


def start_after(
    resource: Resource, plan: ListPlan, cursors: CursorCodec
) -> tuple[list[Condition], bool]:
    """The plan's filters plus the cursor's position; False when the cursor is past the end."""
    conditions: list[Condition] = list(plan.filters)
    if plan.cursor is None:
        return conditions, True
    shape = shape_digest(resource.name, plan.filter_pairs, plan.order_text)
    last = cursor_values(resource, cursors.decode(plan.cursor, shape), plan.order)
    beyond = after(plan.order, last)
    if beyond is None:
        return conditions, False
    return [*conditions, beyond], True


def page_select(
    resource: Resource, plan: ListPlan, conditions: Sequence[Condition], limit: int
) -> tuple[Select, list[Column]]:
    """The statement for one page, and its columns: those selected, then the order's others."""
    chosen = {c.name for c in plan.select}
    fetch = list(plan.select) + [
        resource.by_name.get(o.column) or _hidden(resource, o.column)
        for o in plan.order
        if o.column not in chosen
    ]
    select = Select(
        table=resource.table.ref,
        columns=tuple(c.name for c in fetch),
        where=And(tuple(conditions)) if conditions else None,
        order=plan.order,
        limit=limit,
        as_text=text_columns(resource, fetch),
    )
    return select, fetch


def position(fetch: Sequence[Column], plan: ListPlan, row: Row) -> list[Any]:
    """A fetched row's values of the ordering columns, as the driver returned them: a keyset
    continues after exactly these (an encoded value may be a fallback text, not the value)."""
    index = {c.name: i for i, c in enumerate(fetch)}
    return [row[index[o.column]] for o in plan.order]


def text_columns(resource: Resource, columns: Sequence[Column]) -> frozenset[str]:
    as_text = resource.adapter.fetches_as_text
    return frozenset(c.name for c in columns if as_text(c.type))


def _hidden(resource: Resource, name: str) -> Column:
    column = resource.table.column(name)
    assert column is not None, name
    return column


def _page(items: list[dict[str, Any]], next_cursor: str | None) -> ApiResponse:
    body = dumps({"items": items, "next_cursor": next_cursor})
    return ApiResponse(200, {"Content-Type": JSON}, body, rows=len(items))


def cursor_values(resource: Resource, values: list[Any], order: Sequence[Any]) -> list[Any]:
    if len(values) != len(order):
        raise BadRequest("cursor does not match this resource; start again without cursor")
    out = []
    for spec, value in zip(order, values, strict=True):
        column = resource.table.column(spec.column)
        assert column is not None
        out.append(_cursor_value(column, value))
    return out


def _cursor_value(column: Column, value: Any) -> Any:
    """A value from a cursor the agent signed, as served: text that does not parse as the
    column's type is a fallback value (the database's own text), and is bound as that text."""
    if not isinstance(value, str):
        return value
    try:
        return parse(column.type, value)
    except ValueError:
        return value


def key_values(resource: Resource, key: str) -> dict[str, Any]:
    """The key of `/v1/{resource}/{key}`, its path segment decoded once.

    A single-column key is the whole segment. A composite key is its values in key order,
    separated by commas; a value holding a comma or starting with a double quote is written in
    double quotes, a quote inside doubled (`"a,b",3`), as in a CSV line."""
    if not resource.key:
        raise NotFound(f"{resource.name} has no key, so rows cannot be addressed one by one")
    parts = _composite(resource, key) if len(resource.key) > 1 else [key]
    values: dict[str, Any] = {}
    for column, text in zip(resource.key, parts, strict=True):
        try:
            values[column.name] = parse(column.type, text)
        except ValueError as exc:
            raise BadRequest(f"key {column.name}: {text!r}: {exc}") from None
    return values


def _composite(resource: Resource, key: str) -> list[str]:
    names = ",".join("{" + c.name + "}" for c in resource.key)
    shape = (
        f"{resource.name} rows are addressed as {names}; write a value holding a comma in "
        'double quotes, like "a,b"'
    )
    try:
        parts = split_items(key) if key else []
    except ValueError:
        raise BadRequest(f"the key {key!r} is not well formed: {shape}") from None
    if len(parts) != len(resource.key):
        count = f"{len(parts)} values, not {len(resource.key)}"
        raise BadRequest(f"the key {key!r} has {count}: {shape}")
    return parts


def key_condition(resource: Resource, values: Mapping[str, Any]) -> Condition:
    """`key = value` for every key column; values may be canonical or in their JSON form."""
    terms: list[Condition] = []
    for column in resource.key:
        value = values[column.name]
        if isinstance(value, str) and column.type.kind not in (Kind.STRING, Kind.UNKNOWN):
            value = parse(column.type, value)
        terms.append(Compare(column.name, Op.EQ, value))
    return terms[0] if len(terms) == 1 else And(tuple(terms))


def any_key(resource: Resource, keys: Sequence[Mapping[str, Any]]) -> Condition:
    """Rows with any of these keys (canonical or JSON values): one IN for a one-column key,
    an OR of the keys for a composite one."""
    terms = [key_condition(resource, key) for key in keys]
    if len(resource.key) == 1:  # each term is `key = value`
        values = tuple(dict.fromkeys(t.value for t in terms if isinstance(t, Compare)))
        return In(resource.key[0].name, values)
    return Or(tuple(dict.fromkeys(terms)))


class Selects(Protocol):
    async def select(self, select: Select) -> list[Row]: ...


async def rows_by_key(
    on: Selects,
    resource: Resource,
    keys: Sequence[Mapping[str, Any]],
    columns: Sequence[Column] | None = None,
) -> list[dict[str, Any]]:
    """The rows with these keys, as served (encoded), read in one statement on `on` (the
    adapter, or a transaction); `columns`: those to read, by default all served."""
    if not keys:
        return []
    chosen = tuple(columns or resource.columns)
    select = Select(
        resource.table.ref, tuple(c.name for c in chosen), where=any_key(resource, keys),
        limit=len(keys) + 1, as_text=text_columns(resource, chosen),
    )  # fmt: skip
    return encode_rows(resource, chosen, await on.select(select))


def etag_of(resource: Resource, item: Mapping[str, Any]) -> str:
    """A strong ETag: the row-version column's value, or else a hash of the whole served row."""
    column = resource.config.etag_column
    return _etag(dumps(item[column] if column else item))


def _etag(payload: bytes) -> str:
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class KeyedRead:
    """`get_row`'s statement for one resource, rendered once: the SQL with a placeholder per
    key column, how each key value is bound, how a row is encoded, and whether the key is
    the table's primary key (then the adapter may run it as a `lookup`)."""

    sql: str
    bind: Callable[[Any], Any]
    names: tuple[str, ...]
    fixes: tuple[tuple[str, Callable[[Any], Any]], ...]
    primary: bool
    together: Coalescer | None = None
    """Where lookups arriving together share a statement (`agent.api.coalesce`)."""

    def encode(self, row: Row) -> dict[str, Any]:
        item = dict(zip(self.names, row, strict=False))
        for name, fix in self.fixes:
            value = item[name]
            if value is not None:
                item[name] = fix(value)
        return item


def keyed_read(resource: Resource) -> KeyedRead:
    plan = resource.plans.get("get")
    if isinstance(plan, KeyedRead):
        return plan
    dialect = resource.adapter.dialect
    select = Select(
        table=resource.table.ref,
        columns=tuple(c.name for c in resource.columns),
        where=key_condition(resource, {c.name: None for c in resource.key}),
        limit=2,
        as_text=text_columns(resource, resource.columns),
    )
    primary = tuple(c.name for c in resource.key) == resource.table.primary_key
    plan = KeyedRead(
        sql=dialect.render_select(select).sql,
        bind=dialect.bind,
        names=select.columns,
        fixes=tuple((c.name, fix) for c in resource.columns if (fix := resource.encoders[c.name])),
        primary=primary,
        together=_coalescer(resource, select) if primary else None,
    )
    resource.plans["get"] = plan
    return plan


def _coalescer(resource: Resource, select: Select) -> Coalescer | None:
    """Lookups sharing `WHERE key IN (...)`, where that answers each key exactly: a networked
    source, and a one-column integer key read as it is stored."""
    adapter, (key, *more) = resource.adapter, resource.key
    exact = key.type.kind is Kind.INTEGER and key.name not in select.as_text
    if more or not exact or key.name not in select.columns or not adapter.coalesce_lookups:
        return None
    dialect = adapter.dialect
    statements: dict[int, str] = {}  # by the number of keys

    async def fetch(keys: Sequence[Any]) -> list[Row]:
        sql = statements.get(len(keys))
        if sql is None:
            batch = replace(select, where=In(key.name, tuple(keys)), limit=len(keys))
            sql = statements[len(keys)] = dialect.render_select(batch).sql
        return await adapter.fetch(sql, [dialect.bind(k) for k in keys], len(keys))

    index = select.columns.index(key.name)
    return Coalescer(fetch, index, in_flight=IN_FLIGHT, most=BATCH_MOST)


async def get_row(
    resource: Resource, raw_key: str, query: Sequence[tuple[str, str]] = ()
) -> ApiResponse:
    """One row by its key; `select=` trims the answer, the ETag stays the whole row's."""
    chosen = parse_select(resource, dict(query).get("select")) if query else resource.columns
    plan = keyed_read(resource)
    values = key_values(resource, raw_key)
    if plan.together is not None:
        found = await plan.together.get(*values.values())
        rows = [found] if found is not None else []
    else:
        adapter, params = resource.adapter, [plan.bind(value) for value in values.values()]
        fetch = adapter.lookup if plan.primary else adapter.fetch
        rows = await fetch(plan.sql, params, 2)
    if not rows:
        raise NotFound(f"no {resource.name} row with key {raw_key!r}")
    item = plan.encode(rows[0])
    whole = dumps(item)
    column = resource.config.etag_column  # as etag_of, the whole row's JSON written once
    headers = {"Content-Type": JSON, "ETag": _etag(dumps(item[column]) if column else whole)}
    if chosen is not resource.columns:
        whole = dumps({c.name: item[c.name] for c in chosen})
    return ApiResponse(200, headers, whole, rows=1)
