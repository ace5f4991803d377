# Named queries serve values by the same mapping as resources, on every backend: the query's
# columns are typed as the database describes them (timestamptz keeps its offset, SQLite
# NUMERIC is an exact decimal, MariaDB's BOOLEAN a boolean), and PostgreSQL parameters are
# typed by their declaration (`SELECT :flag` is a boolean, not the text '1').
from __future__ import annotations

import json
from typing import Any

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, module_backend


def schema(b: Backend) -> list[str]:
    t = b.types
    zoned = f", at {t['tstz']}" if t["tstz"] else ""
    values = "'2024-02-29 11:45:01.5'" if t["tstz"] else ""
    boolean = "BOOLEAN" if b.name == "mariadb" else t["bool"]  # tinyint(1) on MariaDB
    return [
        f"CREATE TABLE vals (id INTEGER PRIMARY KEY, amount {t['dec']} NULL, ok {boolean} NULL, "
        f"ratio {t['float']} NULL, day {t['date']} NULL, stamp {t['ts']} NULL{zoned})",
        f"INSERT INTO vals VALUES (1, 12.3, {'TRUE' if b.name == 'postgresql' else 1}, 0.1, "
        f"'2024-02-29', '2024-02-29 13:45:01'{', ' + values if values else ''})",
        "INSERT INTO vals (id) VALUES (2)",
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "queryvalues", schema)


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    queries = {
        "every": {"source": "db", "sql": "SELECT * FROM vals WHERE id <= :upto ORDER BY id",
                  "params": {"upto": "integer"}},
        "echo": {"source": "db", "sql": "SELECT :flag AS flag, :ratio AS ratio, :day AS day",
                 "params": {"flag": "boolean", "ratio": "float", "day": "date"}},
    }  # fmt: skip
    resources = {"vals": {"source": "db", "table": "vals"}}
    caller: Caller = await run_agent({"db": backend.source}, resources, queries=queries)
    return caller


async def test_query_rows_equal_the_resource_rows(api: Caller) -> None:
    """The same rows read through a named query and through the resource are equal, value
    for value (JSON and NDJSON)."""
    status, _, page = await api.get("/v1/vals", {"order": "id"})
    assert status == 200, page
    status, _, body = await api.send("POST", "/v1/queries/every", {"upto": 10})
    assert status == 200, body
    assert body["items"] == page["items"]
    assert page["items"][0]["amount"] == "12.30"
    assert page["items"][0]["ok"] is True
    status, _, streamed = await api.send(
        "POST", "/v1/queries/every", {"upto": 10}, Accept="application/x-ndjson"
    )
    assert status == 200
    assert [json.loads(line) for line in streamed.decode().splitlines()] == page["items"]


async def test_postgresql_parameters_come_back_typed(api: Caller, backend: Backend) -> None:
    """On PostgreSQL a parameter echoed by the query keeps its declared type."""
    if backend.name != "postgresql":
        pytest.skip("psqlODBC sends parameters untyped; the others bind them typed")
    body = {"flag": True, "ratio": 0.1, "day": "2024-02-29"}
    status, _, answer = await api.send("POST", "/v1/queries/echo", body)
    assert status == 200, answer
    assert answer["items"] == [{"flag": True, "ratio": 0.1, "day": "2024-02-29"}]


PG_SPECIAL = [
    "CREATE TABLE special (id INTEGER PRIMARY KEY, d DATE, ts TIMESTAMP, n NUMERIC(6,2))",
    "INSERT INTO special VALUES (3, 'infinity', '-infinity', 'NaN'), "
    "(1, '0044-03-15 BC', '2024-02-29 13:45:01', 1.5), (2, '2024-02-29', NULL, NULL)",
]


async def test_postgresql_special_values_are_the_same_through_a_query(
    backend: Backend, run_agent: Any
) -> None:
    """A named query over PostgreSQL's infinity and BC dates serves them as a resource does
    (their text, never another date), in the query's own order."""
    if backend.name != "postgresql":
        pytest.skip("infinity and BC dates are PostgreSQL's")
    backend.run(["DROP TABLE IF EXISTS special", *PG_SPECIAL])
    queries = {"special": {"source": "db", "sql": "SELECT * FROM special ORDER BY id DESC"}}
    resources = {"special": {"source": "db", "table": "special"}}
    api: Caller = await run_agent({"db": backend.source}, resources, queries=queries)
    status, _, page = await api.get("/v1/special", {"order": "id.desc"})
    assert status == 200, page
    assert page["items"][0] == {"id": 3, "d": "infinity", "ts": "-infinity", "n": "NaN"}
    status, _, body = await api.send("POST", "/v1/queries/special", {})
    assert status == 200, body
    assert body["items"] == page["items"]
    status, _, streamed = await api.send(
        "POST", "/v1/queries/special", {}, Accept="application/x-ndjson"
    )
    assert status == 200
    assert [json.loads(line) for line in streamed.decode().splitlines()] == page["items"]
