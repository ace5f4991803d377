"""SQLite, for both the stdlib driver and the SQLite ODBC driver.

SQLite stores values by affinity, not by declared type, so the declared type decides the
kind (with SQLite's own affinity rules as the fallback) and decoders turn what is stored
into exact values: DECIMAL(12,2) stored as REAL 12.3 is served as "12.30".
Timestamps are stored and compared as text `YYYY-MM-DD HH:MM:SS[.ffffff]`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from bridgehead.adapters.dialects.base import Dialect, Step
from bridgehead.adapters.dialects.decoders import Decoder, as_uuid_text, quantizer, time_text
from bridgehead.adapters.dialects.typenames import base_type_name
from bridgehead.adapters.types import ColumnType, Kind, ValueRules


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


# SQLite keeps whatever was stored, whatever the declared type: each decoder accepts only
# what its kind can carry and raises otherwise (the API then serves the value as text).


def _from_text(parse: Callable[[str], Any], kind: type) -> Decoder:
    """Text is parsed; a value the driver already converted (the ODBC driver does) is kept."""

    def decode(value: Any) -> Any:
        if isinstance(value, str):
            return parse(value)
        if value.__class__ is not kind:
            raise TypeError(f"not a {kind.__name__}")
        return value

    return decode


def _integer(value: Any) -> Any:
    if value.__class__ is not int:
        raise TypeError("not an integer")
    return value


def _number(value: Any) -> Any:
    if value.__class__ not in (int, float):
        raise TypeError("not a number")
    return value


def _as_bool(value: Any) -> Any:
    if value.__class__ is bool:
        return value
    if value not in (0, 1) or value.__class__ not in (int, float):
        raise ValueError("not a boolean")
    return bool(value)


def _decimal(scale: int | None) -> Decoder:
    exact = quantizer(scale)

    def decode(value: Any) -> Any:
        if value.__class__ not in (int, float, str):
            raise TypeError("not a number")
        number = exact(value)
        if not number.is_finite():
            raise ValueError("not finite")
        return number

    return decode


def _binary(value: Any) -> Any:
    if not isinstance(value, bytes):
        raise TypeError("not bytes")
    return value


def _guid(value: Any) -> Any:
    text = as_uuid_text(value)
    return str(uuid.UUID(text))


_DECODERS: dict[Kind, Decoder] = {
    Kind.INTEGER: _integer,
    Kind.FLOAT: _number,
    Kind.BOOLEAN: _as_bool,
    Kind.TIMESTAMP: _from_text(dt.datetime.fromisoformat, dt.datetime),
    Kind.DATE: _from_text(dt.date.fromisoformat, dt.date),
    Kind.TIME: _from_text(time_text, dt.time),
    Kind.UUID: _guid,
    Kind.BINARY: _binary,
}


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

    def integer_bounds(self, base: str) -> tuple[int, int] | None:
        return None  # every SQLite integer is stored in up to 8 bytes, whatever its name

    session_setup = ("PRAGMA foreign_keys = ON",)  # SQLite leaves them off unless asked
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

    fallback_kinds = frozenset(Kind) - {Kind.STRING, Kind.UNKNOWN}
    # SQLite stores a NaN as NULL; its ODBC driver also cuts text at U+0000.
    value_rules = ValueRules(non_finite=frozenset({"Infinity", "-Infinity"}))
    odbc_value_rules = ValueRules(keeps_nul=False, non_finite=value_rules.non_finite)

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        if column_type.kind is Kind.DECIMAL:
            return _decimal(column_type.scale)
        return _DECODERS.get(column_type.kind) or super().decoder(column_type)

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

    def describe_query(self, sql: str) -> tuple[str, ...] | None:
        # A temporary view's columns carry the declared types of the columns they select.
        return (
            f"CREATE TEMP VIEW bh_probe AS {sql}",
            "SELECT name, type FROM pragma_table_info('bh_probe', 'temp')",
            "DROP VIEW temp.bh_probe",
        )

    def compile_steps(self, pieces: Sequence[str]) -> tuple[Step, ...]:
        # EXPLAIN compiles the statement into its program and lists it; nothing runs.
        return ((f"EXPLAIN {'?'.join(pieces)}", (None,) * (len(pieces) - 1)),)
