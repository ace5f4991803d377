"""The dialects Bridgehead knows, chosen from the connection's `SQL_DBMS_NAME`."""

from __future__ import annotations

from collections.abc import Sequence

from bridgehead.adapters.dialects.access import AccessDialect
from bridgehead.adapters.dialects.base import Dialect
from bridgehead.adapters.dialects.db2 import DB2Dialect
from bridgehead.adapters.dialects.mssql import SQLServerDialect
from bridgehead.adapters.dialects.mysql import MySQLDialect
from bridgehead.adapters.dialects.oracle import OracleDialect
from bridgehead.adapters.dialects.postgresql import PostgreSQLDialect
from bridgehead.adapters.dialects.sqlite import SQLiteDialect

DIALECTS: tuple[type[Dialect], ...] = (
    PostgreSQLDialect,
    MySQLDialect,
    SQLiteDialect,
    SQLServerDialect,
    OracleDialect,
    DB2Dialect,
    AccessDialect,
)


def pick(dbms_name: str, dialects: Sequence[type[Dialect]]) -> type[Dialect] | None:
    """The first dialect whose `dbms_names` prefixes the DBMS's name (case-insensitive)."""
    lowered = dbms_name.lower()
    for dialect in dialects:
        if lowered.startswith(dialect.dbms_names):
            return dialect
    return None


def for_dbms(dbms_name: str) -> Dialect:
    """The dialect for a DBMS name; unknown DBMSs get the ANSI defaults."""
    found = pick(dbms_name, DIALECTS)
    return (found or Dialect)()


__all__ = ["DIALECTS", "Dialect", "for_dbms"]
