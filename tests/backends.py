# The four backends the adapter contract runs against, each with its own DDL dialect:
# stdlib SQLite, SQLite through its ODBC driver, PostgreSQL through psqlODBC and MariaDB
# through MariaDB Connector/ODBC. A Backend knows how to run set-up SQL with the raw
# driver and what YAML source entry points the agent at it.
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyodbc
from dbservers import DatabaseServer


@dataclass
class Backend:
    name: str
    source: dict[str, Any]
    run: Callable[[Sequence[str]], None]
    types: dict[str, str]
    quote: Callable[[str], str]
    generate: str
    """INSERT ... SELECT producing rows (id, grp, label, score) for ids 2, 4, ... 2*N."""
    slow_view: str
    server: DatabaseServer | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ansi_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def backtick_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


SQLITE_TYPES = {
    "dec": "DECIMAL(12,2)",
    "ts": "TIMESTAMP",
    "tstz": "",
    "date": "DATE",
    "time": "TIME",
    "bin": "BLOB",
    "guid": "UUID",
    "text": "TEXT",
    "bool": "BOOLEAN",
    "int": "INTEGER",
    "big": "BIGINT",
    "float": "DOUBLE",
}
SQLITE_GENERATE = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
    "INSERT INTO items SELECT 2 * i, i % 7, 'item ' || i, "
    "CASE WHEN i % 5 = 0 THEN NULL ELSE i % 100 END FROM n"
)
SQLITE_SLOW = (
    "CREATE VIEW slow AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 300000000) SELECT max(i) AS id FROM n"
)


def sqlite_run(path: Path) -> Callable[[Sequence[str]], None]:
    def run(statements: Sequence[str]) -> None:
        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        db.close()

    return run


def sqlite_backend(path: Path, *, odbc: bool) -> Backend:
    source: dict[str, Any] = (
        {"odbc": f"DRIVER={{SQLite3}};Database={path};Timeout=5000"}
        if odbc
        else {"sqlite": str(path)}
    )
    return Backend(
        name="sqlite-odbc" if odbc else "sqlite",
        source=source,
        run=sqlite_run(path),
        types=SQLITE_TYPES,
        quote=ansi_quote,
        generate=SQLITE_GENERATE,
        slow_view=SQLITE_SLOW,
    )


def odbc_run(connection_string: str, setup: Sequence[str] = ()) -> Callable[[Sequence[str]], None]:
    def run(statements: Sequence[str]) -> None:
        connection = pyodbc.connect(connection_string, autocommit=True, timeout=10)
        try:
            for statement in (*setup, *statements):
                connection.execute(statement)
        finally:
            connection.close()

    return run


def postgres_backend(server: DatabaseServer, database: str) -> Backend:
    connection_string = server.odbc_connection_string(database)
    return Backend(
        name="postgresql",
        source={"odbc": connection_string},
        run=odbc_run(connection_string, ["SET TIME ZONE 'UTC'"]),
        types={
            "dec": "NUMERIC(12,2)",
            "ts": "TIMESTAMP(6)",
            "tstz": "TIMESTAMPTZ(6)",
            "date": "DATE",
            "time": "TIME(6)",
            "bin": "BYTEA",
            "guid": "UUID",
            "text": "TEXT",
            "bool": "BOOLEAN",
            "int": "INTEGER",
            "big": "BIGINT",
            "float": "DOUBLE PRECISION",
        },
        quote=ansi_quote,
        generate=(
            "INSERT INTO items SELECT 2 * i, i % 7, 'item ' || i, "
            "CASE WHEN i % 5 = 0 THEN NULL ELSE i % 100 END FROM generate_series(1, {count}) i"
        ),
        slow_view="CREATE VIEW slow AS SELECT 1 AS id FROM pg_sleep(30)",
        server=server,
    )


def mariadb_backend(server: DatabaseServer, database: str) -> Backend:
    connection_string = server.odbc_connection_string(database)
    return Backend(
        name="mariadb",
        source={"odbc": connection_string},
        run=odbc_run(connection_string, ["SET time_zone = '+00:00'"]),
        types={
            "dec": "DECIMAL(12,2)",
            "ts": "DATETIME(6)",
            "tstz": "TIMESTAMP(6) NULL",
            "date": "DATE",
            "time": "TIME(6)",
            "bin": "VARBINARY(64)",
            "guid": "UUID",
            "text": "VARCHAR(200)",
            "bool": "BIT(1)",
            "int": "INTEGER",
            "big": "BIGINT",
            "float": "DOUBLE",
        },
        quote=backtick_quote,
        generate=(
            "INSERT INTO items SELECT 2 * seq, seq % 7, CONCAT('item ', seq), "
            "IF(seq % 5 = 0, NULL, seq % 100) FROM seq_1_to_{count}"
        ),
        slow_view="CREATE VIEW slow AS SELECT 1 AS id, SLEEP(30) AS z",
        server=server,
    )
