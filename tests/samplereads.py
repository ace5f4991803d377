# Reading a sample database two ways for the sample suite: through Bridgehead's API (every
# page of a walk, a whole NDJSON or CSV stream) and directly, with SQL these tests write
# (keys in the documented order, each value cast to its text); and comparing the two, each
# difference described by database, resource, column, position and values.
from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from conftest import Caller
from samplecatalog import Column, Relation
from sampledbs import SampleDb
from samplevalues import describe, matches

NDJSON, CSV = "application/x-ndjson", "text/csv"
Key = tuple[str, ...]


class Mismatch(AssertionError):
    """One check's failure, collected so a test reports every column that fails."""


def key_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def keys_of(rows: Sequence[dict[str, Any]], key: Sequence[str]) -> list[Key]:
    return [tuple(key_text(row.get(k)) for k in key) for row in rows]


def page_limit(count: int) -> int:
    return min(1000, max(10, math.ceil(count / 5)))


async def reference(db: SampleDb, sql: str) -> list[tuple[Any, ...]]:
    return await asyncio.to_thread(db.query, sql)


def key_select(db: SampleDb, r: Relation) -> str:
    q, text = db.dialect.quote, db.dialect.as_text
    return ", ".join(f"{text(q(k), r.column(k))} AS k{i}" for i, k in enumerate(r.key))


async def reference_keys(db: SampleDb, r: Relation, column: Column | None, desc: bool) -> list[Key]:
    """Keys in Bridgehead's documented order, as the database itself orders them."""
    q = db.dialect.quote
    order = [q(k) for k in r.key]
    if column is not None:
        c, d = q(column.name), " DESC" if desc else ""
        order = [f"({c} IS NULL){d}", f"{c}{d}", *order]
    sql = f"SELECT {key_select(db, r)} FROM {q(r.name)} ORDER BY {', '.join(order)}"
    return [tuple(row) for row in await reference(db, sql)]


async def column_texts(db: SampleDb, r: Relation, column: Column) -> dict[Key, Any]:
    """The database's text of one column, by key."""
    q = db.dialect.quote
    value = db.dialect.as_text(q(column.name), column)
    sql = f"SELECT {key_select(db, r)}, {value} FROM {q(r.name)}"
    return {tuple(row[:-1]): row[-1] for row in await reference(db, sql)}


async def count(db: SampleDb, r: Relation) -> int:
    return int((await reference(db, f"SELECT COUNT(*) FROM {db.dialect.quote(r.name)}"))[0][0])


async def walk(
    api: Caller, resource: str, params: dict[str, str], limit: int
) -> list[dict[str, Any]]:
    """Every row of every page, following next_cursor."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, _, body = await api.get(f"/v1/{resource}", query)
        if status != 200:
            raise Mismatch(
                f"GET /v1/{resource}?{urlencode(query)} answered {status}: {body!r:.300}"
            )
        rows.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
    raise Mismatch(f"GET /v1/{resource}?{urlencode(params)}: more than 10,000 pages")


async def stream(
    api: Caller, resource: str, params: dict[str, str], media: str
) -> list[dict[str, Any]]:
    """The rows of an NDJSON or CSV stream (CSV values as their text)."""
    status, _, raw = await api.get(f"/v1/{resource}", params, Accept=media)
    if status != 200:
        raise Mismatch(
            f"GET /v1/{resource}?{urlencode(params)} as {media} answered {status}: {raw!r:.300}"
        )
    text = raw.decode("utf-8")
    if media == NDJSON:
        return [json.loads(line) for line in text.splitlines() if line]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def first_difference(
    what: str, expected: Sequence[Key], got: Sequence[Key], values: dict[Key, Any] | None = None
) -> str | None:
    """Where got first leaves expected, with the ordered column's value (the database's
    text) beside each key when values are given."""
    if list(expected) == list(got):
        return None
    i = next((i for i, (e, g) in enumerate(zip(expected, got, strict=False)) if e != g), None)
    if i is None:
        i = min(len(expected), len(got))
    exp = expected[i] if i < len(expected) else "(end)"
    actual = got[i] if i < len(got) else "(end)"
    if values is not None:
        exp, actual = (
            f"{k} (value {values.get(k)!r})" if k != "(end)" else k for k in (exp, actual)
        )
    duplicates = len(got) - len(set(got))
    return (
        f"{what}: {len(got)} rows ({duplicates} duplicate keys), {len(expected)} expected; "
        f"first difference at position {i}: expected key {exp}, got {actual}"
    )


async def reference_rows(db: SampleDb, r: Relation, where: str = "") -> dict[Key, tuple[Any, ...]]:
    """Each row's values as the database's text, by key."""
    q, text = db.dialect.quote, db.dialect.as_text
    values = ", ".join(f"{text(q(c.name), c)} AS c{i}" for i, c in enumerate(r.columns))
    sql = f"SELECT {key_select(db, r)}, {values} FROM {q(r.name)} {where}"
    n = len(r.key)
    return {tuple(row[:n]): tuple(row[n:]) for row in await reference(db, sql)}


def value_problems(
    r: Relation, rows: Sequence[dict[str, Any]], texts: dict[Key, tuple[Any, ...]]
) -> list[str]:
    """Per column, how many served values differ from the database's, with examples."""
    failures, bad = [], {c.name: [] for c in r.columns}  # type: dict[str, list[str]]
    for row in rows:
        key = tuple(key_text(row.get(k)) for k in r.key)
        if key not in texts:
            failures.append(f"served a row with key {key} that the database does not hold")
            continue
        if set(row) != {c.name for c in r.columns}:
            failures.append(
                f"key {key}: served columns {sorted(row)}, table has {[c.name for c in r.columns]}"
            )
        for column, text in zip(r.columns, texts[key], strict=True):
            if not matches(column, row.get(column.name), text):
                served = row.get(column.name, "(absent)")
                bad[column.name].append(
                    f"key {key}: expected {describe(column, text)}, got {served!r}"
                )
    for name, problems in bad.items():
        if problems:
            c = r.column(name)
            failures.append(
                f"{r.resource}.{name} ({c.declared}, {c.kind}): {len(problems)} of {len(rows)} "
                f"rows differ, e.g. " + "; ".join(problems[:3])
            )
    return failures


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def key_where(db: SampleDb, r: Relation, key: dict[str, Any]) -> str:
    q = db.dialect.quote
    return "WHERE " + " AND ".join(f"{q(k)} = {literal(key_text(key[k]))}" for k in r.key)


def stream_problems(
    r: Relation, rows: Sequence[dict[str, Any]], streamed: Sequence[dict[str, Any]]
) -> list[str]:
    """How the NDJSON stream's rows differ from the JSON pages' rows."""
    by_key = dict(zip(keys_of(rows, r.key), rows, strict=True))
    differing = [
        (k, row)
        for k, row in zip(keys_of(streamed, r.key), streamed, strict=True)
        if by_key.get(k) != row
    ]
    if not differing and len(streamed) == len(rows):
        return []
    first = f"; first {differing[0][1]!r:.300} vs pages {by_key.get(differing[0][0])!r:.300}"
    return [
        f"NDJSON stream: {len(streamed)} rows, {len(rows)} in the JSON pages, "
        f"{len(differing)} differ" + (first if differing else "")
    ]
