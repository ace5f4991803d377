"""The write operations: insert, partial update and delete, each in one transaction.

Rules:
- A body names only served columns; values are parsed by column kind before any SQL runs.
- An insert of many rows is all or nothing; the response holds the rows as the database
  stored them (defaults, generated keys, triggers), read back by key in the same transaction.
- An insert is reported only from what its own statement did: one row counted, its own
  generated key read in the same transaction; anything else rolls back as an error.
- Update and delete need `If-Match` (428 without; `*` matches any row), lock the row,
  compare its ETag (412 on mismatch, so of two writers holding the same ETag exactly one
  wins), then write.
- `hooks` tell the idempotency store that the write reached the database (a transaction
  began: its outcome is then the request's, to be replayed) and let it record the response
  before the commit, with a `Proof` that says afterwards whether that commit happened.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from bridgehead.adapters.base import Outcome, Transaction
from bridgehead.adapters.sql import Condition, Delete, Insert, Select, Update
from bridgehead.agent.api.message import ApiResponse
from bridgehead.agent.api.reads import (
    encode_rows,
    etag_of,
    key_condition,
    key_values,
    rows_by_key,
    text_columns,
)
from bridgehead.agent.bounds import WideNumber
from bridgehead.agent.catalog import Resource
from bridgehead.agent.errors import NotFound, PreconditionFailed, PreconditionRequired
from bridgehead.agent.values import dumps, from_json
from bridgehead.common.errors import ApiError, BadRequest

JSON = "application/json"
Proof = dict[str, Any]
MAX_INTEGER_DIGITS = 40


class Hooks(Protocol):
    def reached(self) -> None:
        """The write's transaction began: what follows happened in the database."""

    async def before_commit(self, response: ApiResponse, proof: Proof) -> None:
        """Just before the commit, with the response and how to tell the commit happened."""


class NoHooks:
    def reached(self) -> None:
        return None

    async def before_commit(self, response: ApiResponse, proof: Proof) -> None:
        return None


BeforeCommit = Hooks
no_hook = NoHooks()


@dataclass(frozen=True)
class WriteLimits:
    max_rows: int = 1000


def parse_body(body: bytes) -> Any:
    if not body:
        raise BadRequest("the request needs a JSON body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "number" in exc.msg:  # beyond a double: its column says why, naming the column
            return _wide_numbers(body)
        raise BadRequest(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _wide_numbers(body: bytes) -> Any:
    """The body with numbers beyond a double's range (`1e999999999`, 400-digit integers) kept
    as `WideNumber`s, so the column they are for refuses them by name."""

    def number(text: str) -> Any:
        value = float(text)
        return value if math.isfinite(value) else WideNumber(text)

    def integer(text: str) -> Any:
        return int(text) if len(text) <= MAX_INTEGER_DIGITS else WideNumber(text)

    def constant(text: str) -> Any:
        raise ValueError(f"{text} is not JSON")

    try:
        return json.loads(body, parse_float=number, parse_int=integer, parse_constant=constant)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def row_values(resource: Resource, row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict) or not row:
        raise BadRequest(f"{where}: expected a JSON object of column values")
    values: dict[str, Any] = {}
    for name, value in row.items():
        column = resource.column(name)
        if column is None:
            names = ", ".join(c.name for c in resource.columns)
            raise BadRequest(
                f"{where}: unknown column {name!r}; columns of {resource.name}: {names}"
            )
        try:
            values[name] = from_json(column.type, value)
        except ValueError as exc:
            raise BadRequest(f"{where}: column {name!r}: {exc}") from None
    return values


async def read_back(tx: Transaction, resource: Resource, where: Condition, lock: bool) -> Any:
    """The row as served (encoded), or None; `lock` holds it until the transaction ends."""
    select = Select(
        resource.table.ref,
        tuple(c.name for c in resource.columns),
        where=where,
        limit=2,
        as_text=text_columns(resource, resource.columns),
        lock=lock,
    )
    rows = await tx.select(select)
    return encode_rows(resource, resource.columns, rows[:1])[0] if rows else None


async def insert(
    resource: Resource, body: bytes, limits: WriteLimits, hooks: Hooks = no_hook
) -> ApiResponse:
    document = parse_body(body)
    batch = document if isinstance(document, list) else [document]
    if not batch or len(batch) > limits.max_rows:
        raise BadRequest(f"send 1 to {limits.max_rows} rows in one request, not {len(batch)}")
    rows = [row_values(resource, r, f"row {i + 1}") for i, r in enumerate(batch)]
    async with resource.adapter.transaction() as tx:
        hooks.reached()
        stored = await _insert_rows(tx, resource, rows)
        if isinstance(document, list):
            response = _json(201, {"items": stored})
        else:
            response = _json(201, stored[0], {"ETag": etag_of(resource, stored[0])})
        response.rows = len(stored)
        proof = {"op": "insert", "keys": [[r[c.name] for c in resource.key] for r in stored]}
        await hooks.before_commit(response, proof)
    return response


async def _insert_rows(tx: Transaction, resource: Resource, rows: list[dict[str, Any]]) -> Any:
    """Insert `rows` and read them back as served, in order: sent to the pool together (each
    statement still checked), then read back in one statement. Each row's key is the one it
    carries, or else the one the database generated (RETURNING, or the dialect's generated-key
    query right after each insert). A row the read-back does not match by that key (a CHAR
    key stored padded, say) is read alone. A batch that mixes rows with and without their
    key, or a composite key left to the database, goes a row at a time."""
    key_names = tuple(c.name for c in resource.key)
    given = [all(k in row for k in key_names) for row in rows]
    made = not any(given) and len(key_names) == 1
    if len(rows) == 1 or not (all(given) or made):
        return [await _insert_one(tx, resource, row, n) for n, row in enumerate(rows, 1)]
    table = resource.table.ref
    if all(given):
        inserts = [Insert(table, tuple(r), tuple(r.values())) for r in rows]
        for n, counted in enumerate(await tx.insert_all(inserts), 1):
            if counted != -1:  # -1: a driver that does not count; the read-back tells
                _check_inserted(Outcome(None, counted), n)
        keys = [{k: row[k] for k in key_names} for row in rows]
    else:
        inserts = [Insert(table, tuple(r), tuple(r.values()), returning=key_names) for r in rows]
        outcomes = await tx.insert_each(inserts)
        for n, outcome in enumerate(outcomes, 1):
            _check_inserted(outcome, n)
        keys = [_generated(key_names, outcome, n) for n, outcome in enumerate(outcomes, 1)]
    found = {tuple(r[k] for k in key_names): r for r in await rows_by_key(tx, resource, keys)}
    stored = []
    for n, key in enumerate(keys, 1):
        item = found.get(tuple(key.values()))
        if item is None:
            item = await read_back(tx, resource, key_condition(resource, key), lock=False)
        if item is None:
            raise ApiError(f"row {n} was inserted but cannot be read back through this resource")
        stored.append(item)
    return stored


def _generated(key_names: tuple[str, ...], outcome: Outcome, n: int) -> dict[str, Any]:
    if not outcome.rows:
        raise BadRequest(f"row {n}: this database cannot return generated keys; send the key")
    return dict(zip(key_names, outcome.rows[0][: len(key_names)], strict=True))


async def _insert_one(tx: Transaction, resource: Resource, row: dict[str, Any], n: int) -> Any:
    key_names = tuple(c.name for c in resource.key)
    statement = Insert(resource.table.ref, tuple(row), tuple(row.values()), returning=key_names)
    outcome = await tx.insert(statement)
    _check_inserted(outcome, n)
    if all(k in row for k in key_names):
        key = {k: row[k] for k in key_names}
    elif outcome.rows:
        key = dict(zip(key_names, outcome.rows[0], strict=True))
    elif len(key_names) == 1 and (generated := await tx.generated_key()) is not None:
        key = {key_names[0]: generated[0]}
    else:
        raise BadRequest(f"row {n}: this database cannot return generated keys; send the key")
    stored = await read_back(tx, resource, key_condition(resource, key), lock=False)
    if stored is None:
        raise ApiError(f"row {n} was inserted but cannot be read back through this resource")
    return stored


def _check_inserted(outcome: Outcome, n: int) -> None:
    """This statement inserted exactly one row (-1: a driver that does not count, when the
    statement returned its one row), so its generated key is its own."""
    counted = outcome.rowcount
    if counted == 1 or (counted == -1 and outcome.rows is not None and len(outcome.rows) == 1):
        return
    raise ApiError(
        f"row {n}: the database reported {counted} rows inserted, not 1, without an error; "
        "nothing was written (see the agent log and the table's triggers)"
    )


def _if_match(headers: dict[str, str] | Any, required: bool) -> list[str] | None:
    value = headers.get("if-match")
    if value is None:
        if required:
            raise PreconditionRequired(
                "send If-Match with the ETag from a GET of this row (or * for any version), "
                "so a concurrent change is not overwritten"
            )
        return None
    return [tag.strip().removeprefix("W/") for tag in value.split(",")]


def _check_etag(resource: Resource, current: Any, tags: list[str] | None) -> None:
    if tags is None or "*" in tags:
        return
    if etag_of(resource, current) not in tags:
        raise PreconditionFailed(
            "the row changed since you read it (its ETag no longer matches If-Match); "
            "GET it again and retry"
        )


async def update(
    resource: Resource,
    raw_key: str,
    body: bytes,
    headers: Any,
    hooks: Hooks = no_hook,
) -> ApiResponse:
    values = row_values(resource, parse_body(body), "body")
    for column in resource.key:
        if column.name in values:
            raise BadRequest(f"column {column.name!r} is part of the key and cannot be changed")
    tags = _if_match(headers, required=True)
    where = key_condition(resource, key_values(resource, raw_key))
    async with resource.adapter.transaction() as tx:
        hooks.reached()
        await _current(tx, resource, where, raw_key, tags)
        await tx.update(Update(resource.table.ref, tuple(values), tuple(values.values()), where))
        stored = await read_back(tx, resource, where, lock=False)
        etag = etag_of(resource, stored)
        response = _json(200, stored, {"ETag": etag})
        response.rows = 1
        proof = {"op": "update", "key": _key_of(resource, stored), "etag": etag}
        await hooks.before_commit(response, proof)
    return response


async def delete(
    resource: Resource, raw_key: str, headers: Any, hooks: Hooks = no_hook
) -> ApiResponse:
    tags = _if_match(headers, required=True)
    where = key_condition(resource, key_values(resource, raw_key))
    async with resource.adapter.transaction() as tx:
        hooks.reached()
        current = await _current(tx, resource, where, raw_key, tags)
        await tx.delete(Delete(resource.table.ref, where))
        response = ApiResponse(204, {}, rows=1)
        await hooks.before_commit(response, {"op": "delete", "key": _key_of(resource, current)})
    return response


async def _current(
    tx: Transaction, resource: Resource, where: Condition, raw_key: str, tags: list[str] | None
) -> Any:
    """The row to change, locked until the transaction ends; 404 if absent, 412 if stale."""
    current = await read_back(tx, resource, where, lock=True)
    if current is None:
        raise NotFound(f"no {resource.name} row with key {raw_key!r}")
    _check_etag(resource, current, tags)
    return current


async def committed(resource: Resource, proof: Proof) -> bool:
    """Whether the write a proof describes is in the database (recovery after a crash)."""
    async with resource.adapter.transaction(snapshot=True) as tx:
        if proof["op"] == "insert":
            for key in proof["keys"]:
                if await read_back(tx, resource, _proof_key(resource, key), False) is None:
                    return False
            return True
        row = await read_back(tx, resource, _proof_key(resource, proof["key"]), False)
        if proof["op"] == "delete":
            return row is None
        return row is not None and etag_of(resource, row) == proof["etag"]


def _key_of(resource: Resource, row: Any) -> list[Any]:
    return [row[c.name] for c in resource.key]


def _proof_key(resource: Resource, encoded: Sequence[Any]) -> Condition:
    return key_condition(resource, dict(zip((c.name for c in resource.key), encoded, strict=True)))


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(status, {"Content-Type": JSON, **(headers or {})}, dumps(data))
