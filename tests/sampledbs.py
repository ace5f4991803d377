# The public sample databases (Chinook, Sakila) loaded into the test servers once per session,
# each beside a writable copy, and agents serving every table and view they hold through a
# config written from their own catalogs. The sample files live outside the repository, in
# ../shared/sample-databases; they are read, never edited.
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from backends import odbc_run
from conftest import Caller, agent_config
from dbservers import MariaDBServer, PostgresServer
from samplecatalog import (
    DIALECTS,
    Dialect,
    Query,
    Relation,
    odbc_query,
    relations,
    resource_names,
    sqlite_query,
)
from samplecatalogs import mariadb_catalog, postgres_catalog, sqlite_catalog

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config

SAMPLES = Path(
    os.environ.get("BRIDGEHEAD_SAMPLE_DATABASES")
    or Path(__file__).resolve().parents[2] / "shared" / "sample-databases"
)
CHINOOK_SQLITE = "chinook/Chinook_Sqlite.sqlite"
CHINOOK_POSTGRESQL = "chinook/Chinook_PostgreSql.sql"
CHINOOK_MARIADB = "chinook/Chinook_MySql.sql"
SAKILA_SCHEMA = "sakila-postgresql/schema.sql"
SAKILA_DATA = "sakila-postgresql/data.sql"
MAX_ROWS = 100_000
WRITE = ["read", "insert", "update", "delete"]
PG_SETUP = "SET TIME ZONE 'UTC'"
MARIADB_SETUP = "SET time_zone = '+00:00'"


def sample_file(relative: str) -> Path:
    """A sample database file; without one, the test is skipped saying where it was expected
    (the suite over them needs the public sample databases beside the repository)."""
    path = SAMPLES / relative
    if not path.is_file():
        pytest.skip(
            f"sample database file {path} is missing: the sample databases are expected in "
            f"{SAMPLES} (../shared/sample-databases from the repository root, or the folder "
            "BRIDGEHEAD_SAMPLE_DATABASES names)"
        )
    return path


@dataclass
class SampleDb:
    """One loaded database: how the agent reaches it and how the tests read it directly."""

    name: str
    dialect: Dialect
    source: dict[str, Any]
    query: Query
    relations: dict[str, Relation]


@dataclass
class Sample:
    read: SampleDb
    write: SampleDb
    """A copy of read that write tests may change."""


def _sqlite_db(name: str, path: Path) -> SampleDb:
    query = sqlite_query(path)
    found = relations(query, DIALECTS["sqlite"], sqlite_catalog(query), "")
    return SampleDb(name, DIALECTS["sqlite"], {"sqlite": str(path)}, query, found)


def _postgres_db(name: str, server: PostgresServer, database: str) -> SampleDb:
    connection_string = server.odbc_connection_string(database)
    query = odbc_query(connection_string, PG_SETUP)
    found = relations(query, DIALECTS["postgresql"], postgres_catalog(query), "public")
    return SampleDb(name, DIALECTS["postgresql"], {"odbc": connection_string}, query, found)


def _mariadb_db(name: str, server: MariaDBServer, database: str) -> SampleDb:
    connection_string = server.odbc_connection_string(database)
    query = odbc_query(connection_string, MARIADB_SETUP, wide_as_utf8=True)
    found = relations(query, DIALECTS["mariadb"], mariadb_catalog(query, database), "")
    return SampleDb(name, DIALECTS["mariadb"], {"odbc": connection_string}, query, found)


def load_chinook_sqlite(folder: Path) -> Sample:
    """Two copies of the Chinook SQLite file in folder."""
    original = sample_file(CHINOOK_SQLITE)
    read, write = folder / "chinook.sqlite", folder / "chinook_rw.sqlite"
    for copy in (read, write):
        shutil.copyfile(original, copy)
        copy.chmod(0o644)
    return Sample(_sqlite_db("chinook-sqlite", read), _sqlite_db("chinook-sqlite", write))


def load_chinook_postgres(server: PostgresServer) -> Sample:
    """The Chinook script (it makes database chinook), and chinook_rw copied from it."""
    server.psql("postgres", sample_file(CHINOOK_POSTGRESQL))
    odbc_run(server.odbc_connection_string("postgres"))(
        ["CREATE DATABASE chinook_rw TEMPLATE chinook"]
    )
    name = "chinook-postgresql"
    return Sample(_postgres_db(name, server, "chinook"), _postgres_db(name, server, "chinook_rw"))


def load_sakila_postgres(server: PostgresServer) -> Sample:
    """Sakila's schema then data into database sakila, owned by a role postgres as the dump
    expects, and sakila_rw copied from it."""
    admin = odbc_run(server.odbc_connection_string("postgres"))
    admin(
        [
            "DO $$ BEGIN CREATE ROLE postgres; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            "CREATE DATABASE sakila",
        ]
    )
    server.psql("sakila", sample_file(SAKILA_SCHEMA))
    server.psql("sakila", sample_file(SAKILA_DATA))
    admin(["CREATE DATABASE sakila_rw TEMPLATE sakila"])
    name = "sakila-postgresql"
    return Sample(_postgres_db(name, server, "sakila"), _postgres_db(name, server, "sakila_rw"))


def load_chinook_mariadb(server: MariaDBServer, folder: Path) -> Sample:
    """The Chinook script (it makes database Chinook), and the same script into chinook_rw."""
    script = sample_file(CHINOOK_MARIADB)
    server.source(script)
    renamed = folder / "Chinook_rw.sql"
    text = script.read_text(encoding="utf-8")
    renamed.write_text(re.sub(r"`Chinook`;", "`chinook_rw`;", text), encoding="utf-8")
    server.source(renamed)
    name = "chinook-mariadb"
    return Sample(_mariadb_db(name, server, "Chinook"), _mariadb_db(name, server, "chinook_rw"))


def _names_in_script(relative: str, pattern: str) -> list[str]:
    text = sample_file(relative).read_text(encoding="utf-8")
    return re.findall(pattern, text, flags=re.MULTILINE | re.IGNORECASE)


def _sqlite_names() -> list[str]:
    with sqlite3.connect(f"file:{sample_file(CHINOOK_SQLITE)}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite%'"
        ).fetchall()
    db.close()
    return [row[0] for row in rows]


_LISTINGS: dict[str, Callable[[], list[str]]] = {
    "chinook-sqlite": _sqlite_names,
    "chinook-postgresql": lambda: _names_in_script(
        CHINOOK_POSTGRESQL, r"^CREATE (?:TABLE|VIEW) (\w+)"
    ),
    "chinook-mariadb": lambda: _names_in_script(CHINOOK_MARIADB, r"^CREATE (?:TABLE|VIEW) `(\w+)`"),
    "sakila-postgresql": lambda: _names_in_script(SAKILA_SCHEMA, r"^CREATE (?:TABLE|VIEW) (\w+)"),
}


def listed_resources(database: str) -> list[str]:
    """The resource names for the tables and views a sample's files create, read at collection
    time without a server; a test checks them against the loaded database's catalog."""
    return sorted(resource_names(sorted(set(_LISTINGS[database]()))).values())


def listing() -> dict[str, list[str]]:
    """Resource names per sample database, or {} when the sample files are missing (the
    fixtures then skip saying so)."""
    try:
        return {database: listed_resources(database) for database in _LISTINGS}
    except pytest.skip.Exception:
        return {}


Operations = Callable[[Relation], list[str] | None]
"""The operations to serve a relation with, or None to leave it out."""


def uniform(operations: list[str]) -> Operations:
    """The same operations for every relation (only those with a primary key for writes)."""
    writes = operations != ["read"]
    return lambda r: operations if r.primary or not writes else None


def _resources(db: SampleDb, operations: Operations) -> dict[str, Any]:
    served = {name: (r, operations(r)) for name, r in db.relations.items()}
    return {
        name: {
            "source": "db",
            "table": r.table,
            "max_rows": MAX_ROWS,
            "operations": ops,
            **({"key": list(r.key)} if r.key else {}),
        }
        for name, (r, ops) in served.items()
        if ops is not None
    }


@contextlib.asynccontextmanager
async def serving(
    db: SampleDb, folder: Path, operations: list[str] | Operations
) -> AsyncIterator[Caller]:
    """An agent serving the relations of db: with a list, every relation with it (only those
    with a primary key for writes); with a function, each as it says."""
    chosen = uniform(operations) if isinstance(operations, list) else operations
    key = secrets.token_urlsafe(16)
    limits = {  # out of the way: the suites send many requests, bad credentials among them
        "requests_per_second": 1_000_000,
        "burst": 1_000_000,
        "failed_auth_burst": 1_000_000,
    }
    path = await asyncio.to_thread(
        agent_config, folder, {"db": db.source}, _resources(db, chosen), key, limits=limits
    )
    agent = Agent(await asyncio.to_thread(load_config, path))
    await agent.start()
    try:
        assert agent.listen_url is not None
        async with aiohttp.ClientSession() as session:
            yield Caller(agent.listen_url, key, session, agent)
    finally:
        await agent.stop()
