# Values a database would store as something else: PostgreSQL dropped
# everything from a NUL character on ("nul\u0000byte" stored as "nul", 201). Where the database
# or its driver cannot store a value as sent, the request is a 400 naming the column; where
# it can, the value round-trips exactly.
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, module_backend

NUL = "nul\u0000byte"
KEEPS_NUL = {"sqlite": True, "sqlite-odbc": False, "postgresql": False, "mariadb": True}
"""The SQLite ODBC driver cuts text at U+0000 as PostgreSQL does; stdlib SQLite keeps it."""
NON_FINITE = {
    "sqlite": {"Infinity", "-Infinity"},  # SQLite stores NaN as NULL
    "sqlite-odbc": {"Infinity", "-Infinity"},
    "postgresql": {"Infinity", "-Infinity", "NaN"},
    "mariadb": set(),  # DOUBLE holds none
}


def schema(b: Backend) -> list[str]:
    t = b.types
    return [
        f"CREATE TABLE sent (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(40) NULL, "
        f"note {t['text']} NULL, f {t['float']} NULL)"
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "storedas", schema)


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    await asyncio.to_thread(backend.run, ["DELETE FROM sent"])
    resource = {"source": "db", "table": "sent", "key": ["id"], "operations": ["read", "insert"]}
    caller: Caller = await run_agent({"db": backend.source}, {"sent": resource})
    return caller


@pytest.mark.parametrize("column", ["name", "note"])
async def test_nul_is_kept_or_refused_by_name(api: Caller, backend: Backend, column: str) -> None:
    """Text with U+0000 round-trips exactly where the database keeps it (SQLite, MariaDB);
    elsewhere the insert is a 400 naming the column and nothing is stored."""
    status, _, row = await api.send("POST", "/v1/sent", {"id": 1, column: NUL})
    if KEEPS_NUL[backend.name]:
        assert status == 201, row
        assert row[column] == NUL
        _, _, again = await api.get("/v1/sent/1")
        assert again[column] == NUL
        return
    assert status == 400, row
    assert f"column {column!r}" in row["detail"]
    assert "NUL" in row["detail"]
    status, _, _ = await api.get("/v1/sent/1")
    assert status == 404


async def test_nul_in_a_filter_is_refused_where_it_cannot_match(
    api: Caller, backend: Backend
) -> None:
    """A filter value with U+0000 is a 400 naming the filter where text cannot hold it (it
    would otherwise match the text cut at the NUL)."""
    await api.send("POST", "/v1/sent", {"id": 2, "name": "nul"})
    status, _, body = await api.get("/v1/sent", {"name": f"eq.{NUL}"})
    if KEEPS_NUL[backend.name]:
        assert status == 200, body
        assert body["items"] == []
    else:
        assert status == 400, body
        assert "filter name" in body["detail"]


@pytest.mark.parametrize("spelled", ["Infinity", "-Infinity", "NaN"])
async def test_non_finite_floats_are_stored_or_refused(
    api: Caller, backend: Backend, spelled: str
) -> None:
    """A non-finite float (as the API spells it) is stored and served back where the database
    holds it, and a 400 naming the column where it would become something else or fail."""
    status, _, row = await api.send("POST", "/v1/sent", {"id": 3, "f": spelled})
    if spelled in NON_FINITE[backend.name]:
        assert status == 201, row
        assert row["f"] == spelled
        return
    assert status == 400, row
    assert "column 'f'" in row["detail"]
    assert "finite" in row["detail"]
