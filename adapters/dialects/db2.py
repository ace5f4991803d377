"""IBM Db2 (LUW, z/OS and i): `FETCH FIRST n ROWS ONLY`; SQL_DBMS_NAME starts with `DB2`."""

from __future__ import annotations

from typing import ClassVar

from bridgehead.adapters.dialects.base import Dialect
from bridgehead.adapters.types import Kind


class DB2Dialect(Dialect):
    name = "db2"
    dbms_names = ("db2",)
    returning = False  # Db2 returns inserted rows only via SELECT FROM FINAL TABLE
    name_kinds: ClassVar[dict[str, Kind]] = {
        "graphic": Kind.STRING,
        "vargraphic": Kind.STRING,
        "long varchar": Kind.STRING,
        "dbclob": Kind.STRING,
        "decfloat": Kind.DECIMAL,
        "char for bit data": Kind.BINARY,
        "varchar for bit data": Kind.BINARY,
    }
    lost_connection_markers = ("sql30081n", "sql1224n")

    def limit_suffix(self, limit: int | None, offset: int = 0) -> str:
        if limit is None:
            return ""
        skip = f" OFFSET {int(offset)} ROWS" if offset else ""
        return f"{skip} FETCH FIRST {int(limit)} ROWS ONLY"
