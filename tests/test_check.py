# `bridgehead check` on real databases: schema-qualified MariaDB tables, keys taken from the
# primary key, named-query SQL compiled without running it, procedures looked up (and a
# PostgreSQL function refused with advice), and warnings for columns served as text.
from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import pytest
from backends import Backend
from conftest import agent_config, make_backend

from bridgehead.adapters.base import SourceSettings
from bridgehead.adapters.odbc import ODBCAdapter
from bridgehead.agent.check import run_check
from bridgehead.agent.config import load_config
from bridgehead.common.runtime import StartupError


async def check(
    folder: Path,
    backend: Backend,
    resources: dict[str, Any],
    environ: dict[str, str] | None = None,
    **extra: Any,
) -> str:
    """The report of `bridgehead check` for that config, with `ok`/`FAILED` appended."""
    path = await asyncio.to_thread(
        agent_config, folder, {"db": backend.source}, resources, "key", **extra
    )
    out = io.StringIO()
    ok = await run_check(await asyncio.to_thread(load_config, path, environ or {}), out)
    return out.getvalue() + ("ok" if ok else "FAILED")


def backend_with(
    name: str, request: pytest.FixtureRequest, folder: Path, statements: list[str]
) -> Backend:
    database = f"check_{request.node.name.split('[')[0][-20:]}_{name.replace('-', '_')}"
    backend = make_backend(name, request, folder, database)
    backend.run(statements)
    return backend


async def test_mariadb_table_in_another_database(
    tmp_path: Path, request: pytest.FixtureRequest, run_agent: Any
) -> None:
    """`table: otherdb.t` on MariaDB names table t of database otherdb: check passes and the
    agent reads, inserts and finds its rows there."""
    backend = await asyncio.to_thread(
        backend_with,
        "mariadb",
        request,
        tmp_path,
        [
            "CREATE DATABASE IF NOT EXISTS check_otherdb",
            "CREATE TABLE check_otherdb.films (id INT PRIMARY KEY, title VARCHAR(50) NOT NULL)",
            "INSERT INTO check_otherdb.films VALUES (1, 'Academy Dinosaur')",
        ],
    )
    resources = {
        "films": {"source": "db", "table": "check_otherdb.films", "operations": ["read", "insert"]}
    }
    report = await check(tmp_path, backend, resources)
    assert "resources.films: ok (2 columns)" in report, report
    assert report.endswith("ok")
    api = await run_agent({"db": backend.source}, resources)
    status, _, row = await api.send("POST", "/v1/films", {"id": 2, "title": "Ace Goldfinger"})
    assert status == 201, row
    status, _, page = await api.get("/v1/films")
    assert status == 200, page
    assert [r["title"] for r in page["items"]] == ["Academy Dinosaur", "Ace Goldfinger"]


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
async def test_writes_use_the_primary_key_and_need_one(
    name: str, tmp_path: Path, request: pytest.FixtureRequest, run_agent: Any
) -> None:
    """A write resource without `key:` uses the table's primary key; one whose table has no
    primary key is refused by check and at start, at its operations path."""
    backend = await asyncio.to_thread(
        backend_with,
        name,
        request,
        tmp_path,
        [
            "CREATE TABLE keyed (id INTEGER PRIMARY KEY, note VARCHAR(20))",
            "CREATE TABLE loose (id INTEGER, note VARCHAR(20))",
        ],
    )
    writes = ["read", "insert", "update", "delete"]
    keyed = {"keyed": {"source": "db", "table": "keyed", "operations": writes}}
    api = await run_agent({"db": backend.source}, keyed)
    status, headers, row = await api.send("POST", "/v1/keyed", {"id": 7, "note": "a"})
    assert status == 201, row
    status, _, _ = await api.send("DELETE", "/v1/keyed/7", None, **{"If-Match": headers["ETag"]})
    assert status == 204

    loose = {"loose": {"source": "db", "table": "loose", "operations": writes}}
    report = await check(tmp_path, backend, {**keyed, **loose})
    expected = (
        "resources.loose.operations: FAILED: delete, insert, update need a key, and loose has "
        "no primary key; add key: [...]"
    )
    assert expected in report, report
    assert "resources.keyed: ok" in report
    with pytest.raises(StartupError, match=r"resources\.loose\.operations"):
        await run_agent({"db": backend.source}, loose)


@pytest.mark.parametrize("name", ["sqlite", "sqlite-odbc", "postgresql", "mariadb"])
async def test_named_queries_are_compiled_not_run(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """check compiles each query's SQL without running it: a missing table fails at the
    query's sql path with a sentence (no SQL or driver text); an UPDATE changes nothing."""
    backend = await asyncio.to_thread(
        backend_with,
        name,
        request,
        tmp_path,
        [
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, note VARCHAR(20))",
            "INSERT INTO notes VALUES (1, 'kept')",
        ],
    )
    queries = {
        "recent": {
            "source": "db",
            "sql": "SELECT id, note FROM notes WHERE id > :low",
            "params": {"low": "integer"},
        },
        "rename": {
            "source": "db",
            "sql": "UPDATE notes SET note = :note WHERE id = :id",
            "params": {"note": "string", "id": "integer"},
        },
        "broken": {
            "source": "db",
            "sql": "SELECT id FROM nosuchtable WHERE id = :id",
            "params": {"id": "integer"},
        },
    }
    report = await check(tmp_path, backend, {}, queries=queries)
    assert "queries.recent.sql: ok" in report, report
    assert "queries.rename.sql: ok" in report, report
    assert "queries.broken.sql: FAILED: the database cannot compile this statement" in report
    assert "nosuchtable" not in report
    assert report.endswith("FAILED")
    with_notes = await asyncio.to_thread(read_notes, backend)
    assert with_notes == [(1, "kept")]


def read_notes(backend: Backend) -> list[tuple[Any, ...]]:
    if backend.name == "sqlite":
        import sqlite3  # noqa: PLC0415 - only this backend needs it

        with sqlite3.connect(backend.source["sqlite"]) as db:
            rows = db.execute("SELECT id, note FROM notes").fetchall()
        db.close()
        return rows
    import pyodbc  # noqa: PLC0415 - only the ODBC backends need it

    connection = pyodbc.connect(backend.source["odbc"], autocommit=True)
    try:
        return [tuple(r) for r in connection.execute("SELECT id, note FROM notes").fetchall()]
    finally:
        connection.close()


ROUTINES = {
    "postgresql": [
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, note VARCHAR(20))",
        "CREATE PROCEDURE bump(x integer) LANGUAGE sql AS 'UPDATE notes SET note = ''b'' "
        "WHERE id = x'",
        "CREATE FUNCTION twice(x integer) RETURNS integer LANGUAGE sql AS 'SELECT 2 * x'",
    ],
    "mariadb": [
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, note VARCHAR(20))",
        "CREATE PROCEDURE bump(x INTEGER) UPDATE notes SET note = 'b' WHERE id = x",
        "CREATE FUNCTION twice(x INTEGER) RETURNS INTEGER DETERMINISTIC RETURN 2 * x",
    ],
}


@pytest.mark.parametrize("name", ["postgresql", "mariadb"])
async def test_procedures_are_looked_up(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """check finds each procedure in the catalog: a missing one fails, and a function named
    under procedures fails with advice to expose it as a named query."""
    backend = await asyncio.to_thread(backend_with, name, request, tmp_path, ROUTINES[name])
    procedures = {
        "bump": {"source": "db", "name": "bump", "params": {"x": "integer"}},
        "twice": {"source": "db", "name": "twice", "params": {"x": "integer"}},
        "gone": {"source": "db", "name": "nosuchproc"},
    }
    report = await check(tmp_path, backend, {}, procedures=procedures)
    assert "procedures.bump.name: ok" in report, report
    select = "SELECT * FROM twice(:arg)" if name == "postgresql" else "SELECT twice(:arg)"
    assert (
        "procedures.twice.name: FAILED: twice is a function, not a procedure, so it cannot be "
        f'called; expose it as a named query instead, e.g. queries: {{twice: {{sql: "{select}"'
    ) in report
    assert "procedures.gone.name: FAILED: no procedure named 'nosuchproc'" in report
    assert report.endswith("FAILED")


TEXT_TYPES = {
    "postgresql": (
        [
            "CREATE TYPE mood AS ENUM ('sad', 'happy')",
            "CREATE TABLE odd (id INTEGER PRIMARY KEY, tags TEXT[], doc TSVECTOR, price MONEY, "
            "addr INET, spot POINT, feel mood, plain TEXT)",
        ],
        {
            "tags": "_text",
            "doc": "tsvector",
            "price": "money",
            "addr": "inet",
            "spot": "point",
            "feel": "mood",
        },
    ),
    "mariadb": (
        [
            "CREATE TABLE odd (id INTEGER PRIMARY KEY, rating ENUM('G', 'PG'), "
            "features SET('Trailers', 'Commentaries'), plain VARCHAR(10))"
        ],
        {"rating": "enum('G','PG')", "features": "set('Trailers','Commentaries')"},
    ),
}


@pytest.mark.parametrize("name", ["postgresql", "mariadb"])
async def test_columns_served_as_text_are_warned_about(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """check warns, naming resource, column and type, for each column served as text
    (arrays, tsvector, money, inet, point, enums; MySQL ENUM and SET), and for no other."""
    statements, expected = TEXT_TYPES[name]
    backend = await asyncio.to_thread(backend_with, name, request, tmp_path, statements)
    report = await check(tmp_path, backend, {"odd": {"source": "db", "table": "odd"}})
    warnings = [line for line in report.splitlines() if line.startswith("warning:")]
    for column, db_type in expected.items():
        assert any(
            f"resources.odd: column {column!r} has type {db_type!r}" in w for w in warnings
        ), (column, report)
    assert len(warnings) == len(expected), report
    assert report.endswith("ok")


AWKWARD_PASSWORD = "a;b{c}}d=e f"
USERS = {
    "postgresql": [
        "DROP ROLE IF EXISTS awkward",
        f"CREATE ROLE awkward LOGIN PASSWORD '{AWKWARD_PASSWORD}'",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY)",
        "GRANT SELECT ON notes TO awkward",
    ],
    "mariadb": [
        "DROP USER IF EXISTS awkward@'127.0.0.1'",
        f"CREATE USER awkward@'127.0.0.1' IDENTIFIED BY '{AWKWARD_PASSWORD}'",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY)",
        "GRANT SELECT ON notes TO awkward@'127.0.0.1'",
    ],
}


@pytest.mark.parametrize("name", ["postgresql", "mariadb"])
async def test_substituted_password_with_odbc_specials_connects(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A password holding ; { } = and a space, substituted as `PWD=${env:X}` into an ODBC
    connection string, is quoted for ODBC: check connects and never prints it."""
    backend = await asyncio.to_thread(backend_with, name, request, tmp_path, USERS[name])
    connection = re.sub(
        r"UID=[^;]*;PWD=.*$", "UID=awkward;PWD=${env:DB_PW}", backend.source["odbc"]
    )
    as_awkward = Backend(**{**vars(backend), "source": {"odbc": connection}})
    report = await check(
        tmp_path,
        as_awkward,
        {"notes": {"source": "db", "table": "notes"}},
        environ={"DB_PW": AWKWARD_PASSWORD},
    )
    assert "resources.notes: ok (1 columns)" in report, report
    assert report.endswith("ok")
    assert "b{c" not in report


def test_quoted_passwords_are_scrubbed_whole() -> None:
    """A braced password (with `}}` escapes) is scrubbed from driver messages in both the
    form written in the connection string and the form the driver may echo."""
    target = "DRIVER={X};UID=u;PWD={a;b{c}}d=e f};APP=z"
    adapter = ODBCAdapter(SourceSettings(name="db", adapter="odbc", target=target))
    message = adapter.scrub(f"login failed for {target} with password a;b{{c}}d=e f")
    assert "b{c" not in message
    assert "d=e f" not in message
