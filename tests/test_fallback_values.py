# Values their column's type cannot carry, on the backends that can store them: PostgreSQL's
# infinity, BC and 24:00 dates and times, non-finite floats and numeric NaN; MariaDB's zero
# dates; anything stored in a SQLite column of another type. Each is served as the
# database's own text (counted in a metric), never a failed request and never another value,
# in a page, a row, a stream, and across a keyset cursor that stops on one.
from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from backends import Backend
from conftest import Caller, module_backend
from jsonschema import Draft202012Validator

from bridgehead.agent.metrics import FALLBACK_VALUES

PG_SCHEMA = [
    "CREATE TABLE odd (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, "
    "tm TIME, f DOUBLE PRECISION, n NUMERIC(10,2))",
    "INSERT INTO odd VALUES "
    "(1, 'infinity', '-infinity', 'infinity', '24:00:00', 'Infinity', 'NaN'), "
    "(2, '-infinity', 'infinity', '-infinity', '00:00:00', '-Infinity', 1.5), "
    "(3, '0044-03-15 BC', '0044-03-15 12:00:00 BC', '2024-02-29 11:45:01.5+00', "
    "'12:00:00.5', 'NaN', 2), "
    "(4, '2024-02-29', '2024-02-29 13:45:01', '2024-02-29 11:45:01+05', '13:45:01', 0.5, 3.25), "
    "(5, '10000-01-01', '2024-01-01 00:00:00', NULL, NULL, NULL, NULL)",
]
PG_EXPECTED = {
    1: {"d": "infinity", "ts": "-infinity", "tz": "infinity", "tm": "24:00:00",
        "f": "Infinity", "n": "NaN"},
    2: {"d": "-infinity", "ts": "infinity", "tz": "-infinity", "tm": "00:00:00",
        "f": "-Infinity", "n": "1.50"},
    3: {"d": "0044-03-15 BC", "ts": "0044-03-15 12:00:00 BC",
        "tz": "2024-02-29T11:45:01.500000+00:00", "tm": "12:00:00.500000", "f": "NaN",
        "n": "2.00"},
    4: {"d": "2024-02-29", "ts": "2024-02-29T13:45:01", "tz": "2024-02-29T06:45:01+00:00",
        "tm": "13:45:01", "f": 0.5, "n": "3.25"},
    5: {"d": "10000-01-01", "ts": "2024-01-01T00:00:00", "tz": None, "tm": None, "f": None,
        "n": None},
}  # fmt: skip
MARIADB_SCHEMA = [
    "SET SESSION sql_mode = ''",
    "CREATE TABLE odd (id INTEGER PRIMARY KEY, d DATE NULL, ts DATETIME(6) NULL, "
    "tz TIMESTAMP(6) NULL, tm TIME(6) NULL)",
    "INSERT INTO odd VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', "
    "'838:59:59'), (2, '2024-00-15', '2024-02-29 13:45:01.5', '2024-02-29 11:45:01.5', "
    "'-01:00:00'), (3, '2024-02-29', '2024-02-00 10:00:00', NULL, '10:00:00')",
]
MARIADB_EXPECTED = {
    1: {"d": "0000-00-00", "ts": "0000-00-00 00:00:00.000000",
        "tz": "0000-00-00 00:00:00.000000", "tm": "838:59:59.000000"},
    2: {"d": "2024-00-15", "ts": "2024-02-29T13:45:01.500000",
        "tz": "2024-02-29T11:45:01.500000+00:00", "tm": "-01:00:00.000000"},
    3: {"d": "2024-02-29", "ts": "2024-02-00 10:00:00.000000", "tz": None, "tm": "10:00:00"},
}  # fmt: skip
SQLITE_SCHEMA = [
    "CREATE TABLE odd (id INTEGER PRIMARY KEY, i INTEGER, n NUMERIC(10,2), d DATE, "
    "b BOOLEAN, f DOUBLE, g UUID)",
    "INSERT INTO odd VALUES (1, 'xyz', 'abc', 12345, 'maybe', 'n/a', 'not-a-guid'), "
    "(2, 7, 12.3, '2024-02-29', 1, 9e999, '123E4567-E89B-12D3-A456-426614174000'), "
    "(3, 1.5, '1e5', 'someday', 2, -9e999, X'00')",
]
SQLITE_EXPECTED = {
    1: {"i": "xyz", "n": "abc", "d": "12345", "b": "maybe", "f": "n/a", "g": "not-a-guid"},
    2: {"i": 7, "n": "12.30", "d": "2024-02-29", "b": True, "f": "Infinity",
        "g": "123e4567-e89b-12d3-a456-426614174000"},
    3: {"i": "1.5", "n": "100000.00", "d": "someday", "b": "2", "f": "-Infinity", "g": "AA=="},
}  # fmt: skip
CASES = {
    "postgresql": (PG_SCHEMA, PG_EXPECTED),
    "mariadb": (MARIADB_SCHEMA, MARIADB_EXPECTED),
    "sqlite": (SQLITE_SCHEMA, SQLITE_EXPECTED),
}


@pytest.fixture(scope="module", params=list(CASES))
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "fallback", lambda b: CASES[b.name][0])


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    caller: Caller = await run_agent(
        {"db": backend.source}, {"odd": {"source": "db", "table": "odd"}}
    )
    return caller


def fallbacks(column: str) -> float:
    """How many values of odd.<column> were served as text so far."""
    for metric in FALLBACK_VALUES.collect():
        for sample in metric.samples:
            wanted = {"resource": "odd", "column": column}
            if sample.name.endswith("_total") and sample.labels == wanted:
                return sample.value
    return 0.0


def expected(backend: Backend) -> dict[int, dict[str, Any]]:
    return {i: {"id": i, **row} for i, row in CASES[backend.name][1].items()}


async def test_page_and_rows_serve_the_database_text(api: Caller, backend: Backend) -> None:
    """A page and each row by key hold every value, the unrepresentable ones as text."""
    before = fallbacks("d")
    status, _, body = await api.get("/v1/odd", {"order": "id"})
    assert status == 200, body
    assert {r["id"]: r for r in body["items"]} == expected(backend)
    for key, row in expected(backend).items():
        status, _, body = await api.get(f"/v1/odd/{key}")
        assert (status, body) == (200, row)
    assert fallbacks("d") > before


async def test_streams_serve_the_database_text(api: Caller, backend: Backend) -> None:
    """NDJSON and CSV exports carry the same values and end cleanly."""
    status, _, body = await api.get("/v1/odd", {"order": "id"}, Accept="application/x-ndjson")
    assert status == 200
    assert {r["id"]: r for r in map(json.loads, body.decode().splitlines())} == expected(backend)
    status, _, body = await api.get("/v1/odd", {"order": "id"}, Accept="text/csv")
    assert status == 200
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert [int(r["id"]) for r in table] == sorted(expected(backend))


@pytest.mark.parametrize("descending", [False, True])
async def test_paging_through_unrepresentable_values(
    api: Caller, backend: Backend, descending: bool
) -> None:
    """Ordering by each column with one row a page visits every row once: cursors that stop on
    a fallback value continue after it."""
    columns = [c for c in next(iter(expected(backend).values())) if c != "id"]
    for column in columns:
        seen: list[int] = []
        params: dict[str, str] = {"order": f"{column}.desc" if descending else column, "limit": "1"}
        while True:
            status, _, body = await api.get("/v1/odd", params)
            assert status == 200, (column, body)
            seen += [r["id"] for r in body["items"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert sorted(seen) == sorted(expected(backend)), column


async def test_fallback_values_conform_to_the_document(api: Caller, backend: Backend) -> None:
    """The OpenAPI document admits the database's text for the columns that may hold it, so
    every served row, fallback values included, validates against its row schema (formats
    checked)."""
    status, _, document = await api.get("/v1/openapi.json")
    assert status == 200
    root = {**document["components"]["schemas"]["Odd"], "components": document["components"]}
    check = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
    status, _, page = await api.get("/v1/odd", {"order": "id"})
    assert status == 200
    for row in page["items"]:
        assert not list(check.iter_errors(row)), row
