# Named queries and procedures on real databases: typed parameters checked before anything
# runs, results returned with exact values, output parameters read back; and the scope
# each needs.
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, make_backend

QUERY = (
    "SELECT id, label, score FROM items WHERE id <= :upto AND label <> ':not_a_param' "
    "AND (score IS NULL OR score >= :min_score) ORDER BY id"
)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    b = make_backend(request.param, request, tmp_path_factory.mktemp(request.param), "routines")
    b.run([
        "CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, grp INTEGER NOT NULL, "
        "label VARCHAR(50) NOT NULL, score INTEGER NULL)",
        b.generate.format(count=50),
        "CREATE TABLE big (id INTEGER NOT NULL PRIMARY KEY, grp INTEGER NOT NULL, "
        "label VARCHAR(50) NOT NULL, score INTEGER NULL)",
        b.generate.replace("INTO items", "INTO big").format(count=12_000),
    ])  # fmt: skip
    return b


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    queries = {
        "top": {
            "source": "db",
            "sql": QUERY,
            "params": {"upto": "integer", "min_score": "integer"},
        },
        "capped": {"source": "db", "sql": "SELECT id FROM items ORDER BY id", "max_rows": 5},
        **{
            name: {"source": "db", "sql": f"SELECT id FROM {table} ORDER BY id", "max_rows": cap}
            for name, table, cap in STREAMS
        },
    }
    resources = {"items": {"source": "db", "table": "items"}}
    caller: Caller = await run_agent({"db": backend.source}, resources, queries=queries)
    return caller


async def test_named_query_binds_typed_params(api: Caller) -> None:
    """A named query runs with its declared parameters bound; `:x` inside quotes is text."""
    status, _, body = await api.send("POST", "/v1/queries/top", {"upto": 20, "min_score": 4})
    assert status == 200, body
    expected = [
        {"id": 2 * i, "label": f"item {i}", "score": None if i % 5 == 0 else i % 100}
        for i in range(1, 11)
    ]
    assert body["items"] == [r for r in expected if r["score"] is None or r["score"] >= 4]


async def test_query_rows_are_capped(api: Caller) -> None:
    """A query returns at most its max_rows and says so in X-Truncated."""
    status, headers, body = await api.send("POST", "/v1/queries/capped", {})
    assert status == 200
    assert len(body["items"]) == 5
    assert headers["X-Truncated"].startswith("only the first 5 rows")


STREAMS = [  # name, table, max_rows
    ("cut_in_first_batch", "big", 5),
    ("cut_beyond_first_batch", "big", 7000),
    ("whole_beyond_first_batch", "big", 12_000),
    ("whole_in_first_batch", "items", 50),
]


@pytest.mark.parametrize(("name", "table", "cap"), STREAMS)
@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/csv"])
async def test_streamed_query_says_when_max_rows_cuts_it(
    api: Caller, name: str, table: str, cap: int, accept: str
) -> None:
    """A streamed query stops at max_rows, with X-Truncated exactly when rows were left out."""
    status, headers, body = await api.send("POST", f"/v1/queries/{name}", {}, Accept=accept)
    assert status == 200
    total = 12_000 if table == "big" else 50
    assert len(body.splitlines()) == min(cap, total) + (accept == "text/csv")
    cut = cap < total
    assert headers.get("X-Truncated") == (f"only the first {cap} rows (max_rows)" if cut else None)


BAD_PARAMS = [
    ({"upto": 3}, "missing parameter 'min_score' (integer)"),
    ({"upto": "3", "min_score": 1}, "parameter 'upto': expected an integer"),
    (
        {"upto": 3, "min_score": 1, "extra": 1},
        "unknown parameter 'extra'; parameters of queries/top",
    ),
    ([1, 2], "queries/top takes a JSON object of parameters"),
    ({"upto": "1; DROP TABLE items", "min_score": 1}, "parameter 'upto': expected an integer"),
]


@pytest.mark.parametrize(("params", "detail"), BAD_PARAMS)
async def test_bad_parameters_are_400_naming_them(api: Caller, params: Any, detail: str) -> None:
    """Each wrong parameter is refused before the database is asked, with its name."""
    status, _, body = await api.send("POST", "/v1/queries/top", params)
    assert status == 400, body
    assert body["detail"].startswith(detail)


async def test_routines_need_their_scope_and_exist(api: Caller) -> None:
    """Without queries:top a key gets 403; an unknown query 404; GET 405."""
    status, _, body = await api.send("POST", "/v1/queries/top", {}, key="nobody-key")
    assert status == 403
    assert body["detail"] == "nobody lacks the scope 'queries:top'; grant it in auth"
    status, _, body = await api.send("POST", "/v1/queries/nope", {})
    assert (status, body["detail"]) == (404, "no query named 'nope'")
    status, _, _ = await api.send("GET", "/v1/queries/top")
    assert status == 405


PROCEDURES = {
    "postgresql": [
        "CREATE PROCEDURE bump(IN amount INTEGER, INOUT total INTEGER, OUT note TEXT) "
        "LANGUAGE plpgsql AS $$ BEGIN total := total + amount; note := 'added ' || amount; END $$",
    ],
    "mariadb": [
        "CREATE PROCEDURE bump(IN amount INTEGER, INOUT total INTEGER, OUT note TEXT) "
        "BEGIN SET total = total + amount; SET note = CONCAT('added ', amount); "
        "SELECT id, label FROM items WHERE id <= amount ORDER BY id; END",
    ],
}


@pytest.mark.parametrize("which", ["postgresql", "mariadb"])
async def test_procedure_returns_result_sets_and_outputs(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, run_agent: Any
) -> None:
    """A procedure call returns its result sets and its OUT/INOUT values in `output`."""
    b = await asyncio.to_thread(make_backend, which, request, tmp_path, f"procs_{which}")
    await asyncio.to_thread(b.run, [
        "CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, label VARCHAR(20) NOT NULL)",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        *PROCEDURES[which],
    ])  # fmt: skip
    params = {"amount": "integer", "total": {"type": "integer", "direction": "inout"},
              "note": {"type": "string", "direction": "out"}}  # fmt: skip
    procedures = {"bump": {"source": "db", "name": "bump", "params": params}}
    resources = {"items": {"source": "db", "table": "items"}}
    api = await run_agent({"db": b.source}, resources, procedures=procedures)
    status, _, body = await api.send("POST", "/v1/procedures/bump", {"amount": 2, "total": 40})
    assert status == 200, body
    assert body["output"] == {"total": 42, "note": "added 2"}
    if which == "mariadb":
        assert body["result_sets"] == [[{"id": 1, "label": "one"}, {"id": 2, "label": "two"}]]
    status, _, body = await api.send("POST", "/v1/procedures/bump", {"amount": 2})
    assert (status, body["detail"]) == (400, "missing parameter 'total' (integer)")


async def test_query_streams_as_ndjson_and_csv(api: Caller) -> None:
    """A named query streams its rows as NDJSON or CSV (with a header) when asked to."""
    headers = {"Authorization": f"Bearer {api.key}", "Accept": "text/csv"}
    body = {"upto": 6, "min_score": 0}
    async with api.session.post(api.base + "/v1/queries/top", json=body, headers=headers) as r:
        text = await r.text()
    assert r.status == 200
    assert text == "id,label,score\r\n2,item 1,1\r\n4,item 2,2\r\n6,item 3,3\r\n"
    headers["Accept"] = "application/x-ndjson"
    async with api.session.post(api.base + "/v1/queries/capped", json={}, headers=headers) as r:
        lines = (await r.text()).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [2, 4, 6, 8, 10]
