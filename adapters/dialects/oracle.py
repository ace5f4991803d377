"""Oracle 12c and later: `FETCH FIRST n ROWS ONLY`; NUMBER with scale 0 is an integer."""

from __future__ import annotations

from typing import ClassVar

from bridgehead.adapters.dialects.base import Dialect
from bridgehead.adapters.types import ColumnType, Kind


class OracleDialect(Dialect):
    name = "oracle"
    dbms_names = ("oracle",)
    session_setup = ("ALTER SESSION SET TIME_ZONE = 'UTC'",)
    returning = False  # Oracle's RETURNING needs INTO host variables; rows are read again
    name_kinds: ClassVar[dict[str, Kind]] = {
        "varchar2": Kind.STRING,
        "nvarchar2": Kind.STRING,
        "long": Kind.STRING,
        "date": Kind.TIMESTAMP,  # an Oracle DATE carries a time of day
        "binary_float": Kind.FLOAT,
        "binary_double": Kind.FLOAT,
        "raw": Kind.BINARY,
        "long raw": Kind.BINARY,
        "timestamp with local time zone": Kind.TIMESTAMPTZ,
    }
    lost_connection_markers = ("ora-03113", "ora-03114", "ora-03135", "ora-12541")

    def column_type(
        self,
        db_type: str,
        *,
        sql_type: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
    ) -> ColumnType:
        if db_type.lower().startswith("number"):
            if scale == 0 and precision:
                limit = 10**precision - 1
                return ColumnType(Kind.INTEGER, db_type, precision, scale, (-limit, limit))
            return ColumnType(Kind.DECIMAL, db_type, precision, scale)
        return super().column_type(db_type, sql_type=sql_type, precision=precision, scale=scale)

    def limit_suffix(self, limit: int | None, offset: int = 0) -> str:
        if limit is None:
            return ""
        skip = f" OFFSET {int(offset)} ROWS" if offset else ""
        return f"{skip} FETCH FIRST {int(limit)} ROWS ONLY"
