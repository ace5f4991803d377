# Orders on every backend are the database's own ordering of the column itself, whatever is
# cast for the answer: DECIMAL columns (fetched as text on PostgreSQL and MariaDB) sort as
# numbers, and walking the pages, the NDJSON stream or the CSV stream of such an order
# returns every row once, in the same sequence, with ties broken by the key.
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, module_backend

ROWS = 6000


def total(i: int) -> Decimal | None:
    """Few distinct values (many ties), text order unlike numeric order, NULLs and negatives."""
    if i % 17 == 0:
        return None
    cents = (i * 7919) % 4001 - 400
    return Decimal(cents).scaleb(-2)


def schema(b: Backend) -> list[str]:
    values = ", ".join(f"({i}, {'NULL' if total(i) is None else total(i)})" for i in range(ROWS))
    return [
        f"CREATE TABLE amounts (id INTEGER NOT NULL PRIMARY KEY, total {b.types['dec']} NULL)",
        f"INSERT INTO amounts VALUES {values}",
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "ordering", schema)


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    resources = {"amounts": {"source": "db", "table": "amounts", "max_rows": ROWS}}
    caller: Caller = await run_agent({"db": backend.source}, resources)
    return caller


def expected_ids(descending: bool) -> list[int]:
    """NULL sorts as the largest value; ties are broken by the key, ascending."""
    present = sorted((t, i) for i in range(ROWS) if (t := total(i)) is not None)
    if descending:
        present.sort(key=lambda pair: (-pair[0], pair[1]))
    nulls = [i for i in range(ROWS) if total(i) is None]
    ids = [i for _, i in present]
    return nulls + ids if descending else ids + nulls


async def walk(api: Caller, order: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"order": order, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, _, body = await api.get("/v1/amounts", params)
        assert status == 200, body
        rows += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


@pytest.mark.parametrize("descending", [False, True])
async def test_decimal_pages_follow_the_numeric_order(api: Caller, descending: bool) -> None:
    """Paging `order=total[.desc]` yields the numeric order, every row once."""
    order = "total.desc" if descending else "total"
    rows = await walk(api, order, 700)
    assert [r["id"] for r in rows] == expected_ids(descending)
    served = {r["id"]: r["total"] for r in rows}
    assert all(served[i] == (None if (t := total(i)) is None else str(t)) for i in served)


async def test_first_page_of_a_decimal_order_starts_at_the_largest(api: Caller) -> None:
    """`order=total.desc&limit=5` after the NULLs begins with the largest totals."""
    status, _, body = await api.get("/v1/amounts", {"order": "total.desc", "limit": "5"})
    assert status == 200, body
    assert [r["id"] for r in body["items"]] == expected_ids(True)[:5]


@pytest.mark.parametrize("descending", [False, True])
async def test_decimal_streams_follow_the_numeric_order(api: Caller, descending: bool) -> None:
    """NDJSON and CSV streams of a DECIMAL order match the database's order (two chunks)."""
    order = "total.desc" if descending else "total"
    params = {"order": order}
    status, _, body = await api.get("/v1/amounts", params, Accept="application/x-ndjson")
    assert status == 200
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [r["id"] for r in lines] == expected_ids(descending)
    status, _, body = await api.get("/v1/amounts", params, Accept="text/csv")
    assert status == 200
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert [int(r["id"]) for r in table] == expected_ids(descending)
