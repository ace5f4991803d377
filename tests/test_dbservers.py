# Checks that the throwaway database servers in tests/dbservers.py start, accept ODBC
# connections with the bridgehead credentials, keep UTF-8 text intact and survive a restart.
from __future__ import annotations

from collections.abc import Iterator

import pyodbc
import pytest
from dbservers import DatabaseServer, MariaDBServer, PostgresServer

DATABASE = "bh_test"
UNICODE_TEXT = "Zoë Ωmega 東京"
# A UTF-8 text column in each dialect.
TEXT_COLUMN = {
    PostgresServer: "VARCHAR(100)",
    MariaDBServer: "VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
}


@pytest.fixture(scope="module", params=[PostgresServer, MariaDBServer], ids=["postgres", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[DatabaseServer]:
    server_class: type[DatabaseServer] = request.param
    with server_class() as started:
        started.create_database(DATABASE)
        yield started


def _connect(server: DatabaseServer) -> pyodbc.Connection:
    return pyodbc.connect(server.odbc_connection_string(DATABASE), timeout=10)


def _create_table(server: DatabaseServer, connection: pyodbc.Connection, table: str) -> None:
    column = TEXT_COLUMN[type(server)]
    connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name {column})")
    connection.commit()


def test_select_one(server: DatabaseServer) -> None:
    """The server accepts an ODBC connection with the bridgehead password over 127.0.0.1."""
    connection = _connect(server)
    try:
        assert connection.execute("SELECT 1").fetchval() == 1
    finally:
        connection.close()


def test_wrong_password_is_rejected(server: DatabaseServer) -> None:
    """Password authentication is really enforced, so the credentials are exercised."""
    dsn = server.odbc_connection_string(DATABASE).replace(server.password, "not-the-password")
    with pytest.raises(pyodbc.Error):
        pyodbc.connect(dsn, timeout=10).close()


def test_unicode_round_trip(server: DatabaseServer) -> None:
    """Non-ASCII text bound as a parameter comes back unchanged from a UTF-8 column."""
    connection = _connect(server)
    try:
        _create_table(server, connection, "greetings")
        connection.execute("INSERT INTO greetings (id, name) VALUES (?, ?)", 1, UNICODE_TEXT)
        connection.commit()
        row = connection.execute(
            "SELECT name, CHAR_LENGTH(name) FROM greetings WHERE name = ?", UNICODE_TEXT
        ).fetchone()
        assert tuple(row) == (UNICODE_TEXT, len(UNICODE_TEXT))
    finally:
        connection.close()


def test_restart_keeps_data(server: DatabaseServer) -> None:
    """restart() drops live connections, keeps the port and data, and takes new connections."""
    port = server.port
    connection = _connect(server)
    _create_table(server, connection, "survivors")
    connection.execute("INSERT INTO survivors (id, name) VALUES (?, ?)", 7, UNICODE_TEXT)
    connection.commit()
    server.restart()
    with pytest.raises(pyodbc.Error):
        connection.execute("SELECT 1").fetchall()
    connection.close()
    assert server.port == port
    connection = _connect(server)
    try:
        assert connection.execute("SELECT name FROM survivors WHERE id = 7").fetchval() == (
            UNICODE_TEXT
        )
    finally:
        connection.close()
