# The generic suite over public sample databases nobody on the project wrote (Chinook on
# SQLite, PostgreSQL and MariaDB; Sakila on PostgreSQL): every table and view they hold is a
# resource, and each must page, order, stream, serve values and take writes as the database
# itself would. References are the database's own answers to SQL these tests write.
#
# Rules of the suite:
# - A relation without a primary key (a view, an inherited Sakila partition) is keyed by its
#   first column whose values are all present and distinct, as a user would configure it;
#   one with no such column gets the count check only and no order check.
# - Orders: every orderable column (not binary or unknown types) of every relation, both
#   directions; nothing is sampled, since the whole run stays inside the budget. Pages are a
#   fifth of the table (10 to 1000 rows) so every walk crosses several keyset boundaries.
# - The reference order is Bridgehead's documented one, computed in SQL: NULL as the
#   largest value, ties broken by the key ascending.
# - Writes run on a copy of each database, on tables with a primary key; a column that a
#   trigger or rule may set (timestamps of such tables) is not compared with what was sent.
from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from conftest import Caller
from samplecatalog import ORDERABLE, Column, Relation
from sampledbs import WRITE, Sample, SampleDb, listing, serving
from samplereads import (
    CSV,
    NDJSON,
    Key,
    Mismatch,
    column_texts,
    count,
    first_difference,
    key_text,
    key_where,
    keys_of,
    page_limit,
    reference_keys,
    reference_rows,
    stream,
    stream_problems,
    value_problems,
    walk,
)
from samplewrites import fresh_key, patch_value, sent_problems, unique_copy

pytestmark = pytest.mark.asyncio(loop_scope="module")

LISTING = listing()
CASES = [
    pytest.param(db, resource, id=f"{db}-{resource}")
    for db, resources in (LISTING or {"sample-databases-missing": ["-"]}).items()
    for resource in resources
]
DATABASES = list(LISTING) or ["sample-databases-missing"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Caller]:
    """An agent serving every relation of the sample, read-only."""
    folder = await asyncio.to_thread(tmp_path_factory.mktemp, "agent-read")
    async with serving(sample.read, folder, ["read"]) as caller:
        yield caller


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def write_api(
    sample: Sample, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Caller]:
    """An agent serving the sample's writable copy with every operation."""
    folder = await asyncio.to_thread(tmp_path_factory.mktemp, "agent-write")
    async with serving(sample.write, folder, WRITE) as caller:
        yield caller


def relation(db: SampleDb, resource: str) -> Relation:
    assert resource in db.relations, f"{db.name}: no table or view for resource {resource!r}"
    return db.relations[resource]


def report(db: SampleDb, resource: str, failures: list[str]) -> None:
    assert not failures, f"{db.name} {resource}: {len(failures)} failures:\n" + "\n".join(failures)


@pytest.mark.parametrize("sample", DATABASES, indirect=True)
async def test_every_table_and_view_is_a_resource(sample: Sample) -> None:
    """The tables and views the sample's files create are exactly those in the loaded
    database's catalog, so the parametrised cases cover every one of them."""
    db = sample.read
    assert sorted(db.relations) == LISTING[db.name], f"{db.name}: catalog and listing differ"


@pytest.mark.parametrize(("sample", "resource"), CASES, indirect=["sample"])
async def test_paging_by_key_returns_every_row_once(
    sample: Sample, api: Caller, resource: str
) -> None:
    """Walking all pages in key order, in large and in small pages, returns COUNT(*) rows,
    each key once, in the database's own key order."""
    db, failures = sample.read, []
    r = relation(db, resource)
    total = await count(db, r)
    expected = await reference_keys(db, r, None, False) if r.key else []
    for limit in (1000, max(7, math.ceil(total / 20))):
        try:
            rows = await walk(api, resource, {}, limit)
        except Mismatch as error:
            failures.append(str(error))
            continue
        if len(rows) != total:
            failures.append(f"limit={limit}: {len(rows)} rows, COUNT(*) is {total}")
        if r.key:
            problem = first_difference(f"limit={limit}", expected, keys_of(rows, r.key))
            failures += [problem] if problem else []
    report(db, resource, failures)


async def check_order(
    api: Caller, db: SampleDb, r: Relation, column: Column, desc: bool, total: int
) -> list[str]:
    param = {"order": f"{column.name}.desc" if desc else column.name}
    expected = await reference_keys(db, r, column, desc)
    values = await column_texts(db, r, column)
    what = f"{r.resource}.{column.name} order={param['order']}"
    failures = []
    try:
        got = keys_of(await walk(api, r.resource, param, page_limit(total)), r.key)
        pages = f"{what} JSON pages of {page_limit(total)}"
        failures.append(first_difference(pages, expected, got, values))
        for media in (NDJSON, CSV):
            got = keys_of(await stream(api, r.resource, param, media), r.key)
            failures.append(first_difference(f"{what} {media} stream", expected, got, values))
    except Mismatch as error:
        failures.append(f"{what}: {error}")
    return [f for f in failures if f]


# Sakila's views build these columns with its own group_concat aggregate over rows in no set
# order: their text, and so their order, depends on the query plan (a LIMIT changes it), so
# no two reads need agree. They are left out of the order check, and only of it.
PLAN_DEPENDENT = {
    ("sakila-postgresql", "actor_info", "film_info"),
    ("sakila-postgresql", "film_list", "actors"),
    ("sakila-postgresql", "nicer_but_slower_film_list", "actors"),
}


@pytest.mark.parametrize(("sample", "resource"), CASES, indirect=["sample"])
async def test_every_order_matches_the_database(sample: Sample, api: Caller, resource: str) -> None:
    """For every orderable column, ascending and descending, the JSON pages, the NDJSON
    stream and the CSV stream give the keys in the database's own order of that column (NULL
    largest, ties by key)."""
    db, failures = sample.read, []
    r = relation(db, resource)
    if not r.key:
        pytest.skip(f"{db.name} {resource} has no primary key and no unique column to order by")
    total = await count(db, r)
    orderable = [c for c in r.columns if c.kind in ORDERABLE]
    for column in (c for c in orderable if (db.name, resource, c.name) not in PLAN_DEPENDENT):
        for desc in (False, True):
            failures += await check_order(api, db, r, column, desc, total)
    report(db, resource, failures)


@pytest.mark.parametrize(("sample", "resource"), CASES, indirect=["sample"])
async def test_every_value_matches_the_database(sample: Sample, api: Caller, resource: str) -> None:
    """Every value of every row, read through the JSON pages, is the database's own value
    under the documented mapping (integers as numbers, decimals as exact strings with the
    column's scale, ISO 8601 times, base64 binary, unknown types as the database's text),
    and the NDJSON stream serves the same rows."""
    db = sample.read
    r = relation(db, resource)
    if not r.key:
        pytest.skip(f"{db.name} {resource} has no primary key and no unique column")
    texts = await reference_rows(db, r)
    try:
        rows = await walk(api, resource, {}, 1000)
        streamed = await stream(api, resource, {}, NDJSON)
    except Mismatch as error:
        report(db, resource, [str(error)])
        return
    failures = value_problems(r, rows, texts) + stream_problems(r, rows, streamed)
    if len(rows) != len(texts):
        failures.append(f"{len(rows)} rows served, the database holds {len(texts)}")
    report(db, resource, failures)


async def stored(db: SampleDb, r: Relation, key: dict[str, Any]) -> dict[Key, tuple[Any, ...]]:
    return await reference_rows(db, r, key_where(db, r, key))


async def post_copy(api: Caller, db: SampleDb, r: Relation) -> tuple[dict[str, Any], str]:
    """POST a copy of the first row under a fresh key; the key and the row's path."""
    where = f"{db.name} {r.resource}"
    status, _, page = await api.get(f"/v1/{r.resource}", {"limit": "1"})
    assert status == 200, f"{where}: GET ?limit=1 answered {status}: {page!r:.300}"
    assert page["items"], f"{where}: the table is empty"
    new = await fresh_key(db, r)
    sent = unique_copy(r, page["items"][0], new)
    if sent is None:
        pytest.skip(f"{where}: a unique constraint on foreign-key columns forbids any copy")
    status, _, created = await api.send("POST", f"/v1/{r.resource}", sent)
    assert status == 201, f"{where}: POST {sent!r:.300} answered {status}: {created!r:.300}"
    path = f"/v1/{r.resource}/" + ",".join(quote(key_text(new[k]), safe="") for k in r.key)
    status, _, got = await api.get(path)
    assert status == 200, f"{where}: GET {path} after POST answered {status}: {got!r:.300}"
    row = await stored(db, r, new)
    failures = value_problems(r, [got], row) + sent_problems(r, sent, next(iter(row.values())))
    if created != got:
        failures.append(f"POST answered {created!r:.300} but GET {path} serves {got!r:.300}")
    report(db, r.resource, failures)
    return new, path


async def patch_one(api: Caller, db: SampleDb, r: Relation, new: dict[str, Any], path: str) -> None:
    """PATCH one column with the row's ETag; GET and the database show the change."""
    status, headers, got = await api.get(path)
    change = patch_value(r, got)
    if change is None:
        return
    column, value = change
    etag = {"If-Match": headers.get("ETag", "")}
    status, _, patched = await api.send("PATCH", path, {column.name: value}, **etag)
    assert status == 200, (
        f"{db.name} PATCH {path} {column.name}={value!r} with {etag} answered {status}: "
        f"{patched!r:.300}"
    )
    status, headers, got = await api.get(path)
    row = await stored(db, r, new)
    failures = value_problems(r, [got], row)
    failures += sent_problems(r, {column.name: value}, next(iter(row.values())))
    if patched != got:
        failures.append(f"PATCH answered {patched!r:.300} but GET {path} serves {got!r:.300}")
    report(db, r.resource, failures)


@pytest.mark.parametrize(("sample", "resource"), CASES, indirect=["sample"])
async def test_write_round_trip(sample: Sample, write_api: Caller, resource: str) -> None:
    """On a copy of the database: POST a copy of an existing row under a new key, GET it
    back as the database stored it, PATCH one column with the ETag, GET the change, DELETE
    with the new ETag, and the row is gone (404, and absent from the database)."""
    db = sample.write
    r = relation(db, resource)
    if r.view or not r.primary:
        pytest.skip(f"{db.name} {resource} is a view or has no primary key: writes need a key")
    if r.insert_rules:
        await insert_is_refused_as_rewritten(write_api, db, r)
        return
    new, path = await post_copy(write_api, db, r)
    await patch_one(write_api, db, r, new, path)
    status, headers, _ = await write_api.get(path)
    etag = {"If-Match": headers.get("ETag", "")}
    status, _, body = await write_api.send("DELETE", path, **etag)
    assert status == 204, f"{db.name} DELETE {path} with {etag} answered {status}: {body!r:.300}"
    status, _, body = await write_api.get(path)
    assert status == 404, f"{db.name} GET {path} after DELETE answered {status}: {body!r:.300}"
    assert not await stored(db, r, new), f"{db.name} still holds {path} after DELETE"


async def insert_is_refused_as_rewritten(api: Caller, db: SampleDb, r: Relation) -> None:
    """A table whose inserts a rule sends elsewhere (Sakila's payment) cannot return the row it
    stored: a POST is a 422 saying so, and nothing is written."""
    status, _, page = await api.get(f"/v1/{r.resource}", {"limit": "1"})
    assert status == 200, f"{db.name} GET /v1/{r.resource}?limit=1 answered {status}"
    before = await count(db, r)
    status, _, answer = await api.send("POST", f"/v1/{r.resource}", page["items"][0])
    assert status == 422, f"{db.name} POST to {r.resource} answered {status}: {answer!r:.300}"
    assert "rewrites inserts" in answer["detail"]
    assert await count(db, r) == before, f"{db.name} {r.resource}: a refused POST wrote rows"


async def refused(api: Caller, db: SampleDb, r: Relation, body: dict[str, Any], why: str) -> str:
    """POST body, which the database must refuse: a 409 problem, and nothing written."""
    before = await count(db, r)
    status, _, answer = await api.send("POST", f"/v1/{r.resource}", body)
    after = await count(db, r)
    if status == 409 and after == before:
        return ""
    return (
        f"POST {body!r:.200} ({why}) answered {status} {answer!r:.200}, 409 expected; "
        f"rows {before} before, {after} after"
    )


@pytest.mark.parametrize(("sample", "resource"), CASES, indirect=["sample"])
async def test_writes_the_database_refuses_are_409(
    sample: Sample, write_api: Caller, resource: str
) -> None:
    """On a copy of the database, a POST of an existing row (its primary key taken) and a
    POST whose foreign-key column names no parent row are each answered 409 and write
    nothing."""
    db = sample.write
    r = relation(db, resource)
    if r.view or not r.primary:
        pytest.skip(f"{db.name} {resource} is a view or has no primary key: writes need a key")
    if r.insert_rules:
        await insert_is_refused_as_rewritten(write_api, db, r)
        return
    status, _, page = await write_api.get(f"/v1/{resource}", {"limit": "1"})
    assert status == 200, f"{db.name} GET /v1/{resource}?limit=1 answered {status}: {page!r:.300}"
    existing = page["items"][0]
    failures = [await refused(write_api, db, r, existing, "its primary key is taken")]
    orphans = [c for c in r.columns if c.foreign and c.kind == "integer"]
    if orphans:
        copy = unique_copy(r, existing, await fresh_key(db, r)) or {}
        orphan = {**copy, orphans[0].name: 2_000_000_000}
        why = f"{orphans[0].name} names no parent row"
        failures.append(await refused(write_api, db, r, orphan, why) if copy else "")
    report(db, resource, [f for f in failures if f])
