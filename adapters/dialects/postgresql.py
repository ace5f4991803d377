"""PostgreSQL through psqlODBC: sessions run in UTC so `timestamptz` values come back exact."""

from __future__ import annotations

from typing import ClassVar

from adapters.dialects.base import Dialect
from adapters.types import Kind


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    dbms_names = ("postgresql",)
    session_setup = ("SET TIME ZONE 'UTC'",)
    snapshot_sql = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    name_kinds: ClassVar[dict[str, Kind]] = {
        "timetz": Kind.STRING,
        "time with time zone": Kind.STRING,
        "interval": Kind.STRING,
        "oid": Kind.INTEGER,
    }
    lost_connection_markers = (
        "server closed the connection",
        "could not send query",
        "could not receive data",
        "terminating connection",
        "connection is broken",
        "no connection to the server",
        "the connection was closed",
    )
