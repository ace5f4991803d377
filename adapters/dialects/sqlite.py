"""SQLite, for both the stdlib driver and the SQLite ODBC driver.

SQLite stores values by affinity, not by declared type, so the declared type decides the
kind (with SQLite's own affinity rules as the fallback) and decoders turn what is stored
into exact values: DECIMAL(12,2) stored as REAL 12.3 is served as "12.30".
Timestamps are stored and compared as text `YYYY-MM-DD HH:MM:SS[.ffffff]`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, ClassVar

from adapters.dialects.base import (
    Decoder,
    Dialect,
    Step,
    base_type_name,
    parsed_or_text,
    quantizer,
)
from adapters.types import ColumnType, Kind


def _affinity(base: str) -> Kind:
    upper = base.upper()
    if "INT" in upper:
        return Kind.INTEGER
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return Kind.STRING
    if "BLOB" in upper:
        return Kind.BINARY
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return Kind.FLOAT
    return Kind.UNKNOWN


_parse_datetime = parsed_or_text(dt.datetime.fromisoformat)
_parse_date = parsed_or_text(dt.date.fromisoformat)
_parse_time = parsed_or_text(dt.time.fromisoformat)


def _as_bool(value: Any) -> Any:
    return value if value is None or isinstance(value, bool) else bool(int(value))


class SQLiteDialect(Dialect):
    name = "sqlite"
    dbms_names = ("sqlite",)
    # SQLite has no zoned type: such values are text with their offset, served as written.
    name_kinds: ClassVar[dict[str, Kind]] = {
        "timestamptz": Kind.STRING,
        "timestamp with time zone": Kind.STRING,
    }

    def column_type(
        self,
        db_type: str,
        *,
        sql_type: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
    ) -> ColumnType:
        # The declared type is the truth in SQLite; drivers report sizes of their own making.
        found = super().column_type(db_type)
        if found.kind is Kind.UNKNOWN and db_type:
            found = ColumnType(_affinity(base_type_name(db_type)), db_type)
        if found.kind is Kind.UNKNOWN and sql_type is not None:
            found = super().column_type(db_type, sql_type=sql_type)
        return found

    lock_suffix = ""  # transactions take the database's write lock (BEGIN IMMEDIATE)
    constraint_markers = ("constraint failed",)
    lost_connection_markers = ("database is locked",)
    begin_sql = "BEGIN IMMEDIATE"  # take the write lock first, so writers queue, not deadlock
    generated_key_sql = "SELECT last_insert_rowid()"

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        # TIME is stored as text; the SQLite ODBC driver would drop its fractional seconds.
        return column_type.kind is Kind.TIME

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS TEXT)"

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        match column_type.kind:
            case Kind.DECIMAL:
                return quantizer(column_type.scale)
            case Kind.TIMESTAMP:
                return _parse_datetime
            case Kind.DATE:
                return _parse_date
            case Kind.TIME:
                return _parse_time
            case Kind.BOOLEAN:
                return _as_bool
        return super().decoder(column_type)

    def bind(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.isoformat(" ")
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
        if not isinstance(value, str | int | float | bytes) and value is not None:
            return str(value)
        return value

    def compile_steps(self, pieces: Sequence[str]) -> tuple[Step, ...]:
        # EXPLAIN compiles the statement into its program and lists it; nothing runs.
        return ((f"EXPLAIN {'?'.join(pieces)}", (None,) * (len(pieces) - 1)),)
