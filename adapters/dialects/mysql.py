"""MySQL and MariaDB: backtick quoting, UTC sessions, `TIMESTAMP` is an instant."""

from __future__ import annotations

from typing import ClassVar

from adapters.dialects.base import Dialect
from adapters.types import Kind


class MySQLDialect(Dialect):
    name = "mysql"
    dbms_names = ("mysql", "mariadb")
    quote_open = "`"
    quote_close = "`"
    session_setup = ("SET time_zone = '+00:00'",)
    name_kinds: ClassVar[dict[str, Kind]] = {
        # MySQL converts TIMESTAMP to and from the session zone (UTC here); DATETIME is naive.
        "timestamp": Kind.TIMESTAMPTZ,
        "bit": Kind.BOOLEAN,
        "year": Kind.INTEGER,
        "enum": Kind.STRING,
        "set": Kind.STRING,
        "int unsigned": Kind.INTEGER,
        "bigint unsigned": Kind.INTEGER,
        "smallint unsigned": Kind.INTEGER,
        "tinyint unsigned": Kind.INTEGER,
        "mediumint unsigned": Kind.INTEGER,
        "decimal unsigned": Kind.DECIMAL,
        "double unsigned": Kind.FLOAT,
    }
    lost_connection_markers = (
        "server has gone away",
        "lost connection",
        "can't connect",
        "connection was killed",
        "server shutdown in progress",
    )
