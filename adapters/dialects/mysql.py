"""MySQL and MariaDB: backtick quoting, UTC sessions, `TIMESTAMP` is an instant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from bridgehead.adapters import errors
from bridgehead.adapters.dialects import mysql_errors
from bridgehead.adapters.dialects.base import CallPlan, Dialect, Step
from bridgehead.adapters.dialects.decoders import Decoder, instant, parsed, time_text
from bridgehead.adapters.types import INT64, ColumnType, Kind, TableRef, ValueRules


# MySQL TIME is a duration (-838:59:59 to 838:59:59): a time of day when it is one, else
# served as text. Dates may be zero ('0000-00-00', '2024-00-15'), which Connector/ODBC reads
# as NULL or refuses: dates and times are fetched as text and parsed here.
def _boolean(value: Any) -> bool:
    """BOOLEAN is tinyint(1), which holds -128 to 127: only 0 and 1 are booleans."""
    if value.__class__ is bool:
        return value
    if value not in (0, 1):
        raise ValueError("not a boolean")
    return bool(value)


_DECODERS: dict[Kind, Decoder] = {
    Kind.BOOLEAN: _boolean,
    Kind.TIME: parsed(time_text),
    Kind.DATE: parsed(dt.date.fromisoformat),
    Kind.TIMESTAMP: parsed(dt.datetime.fromisoformat),
    Kind.TIMESTAMPTZ: instant,
}


_PARAM_TYPES = {
    "string": "CHAR",
    "integer": "SIGNED",
    "decimal": "DECIMAL(65,30)",
    "float": "DOUBLE",
    "boolean": "SIGNED",
    "date": "DATE",
    "time": "TIME(6)",
    "timestamp": "DATETIME(6)",
    "uuid": "CHAR(36)",
}
_AS_TEXT = frozenset({Kind.TIME, Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.DECIMAL})


class MySQLDialect(Dialect):
    name = "mysql"
    dbms_names = ("mysql", "mariadb")
    quote_open = "`"
    quote_close = "`"
    session_setup = (
        "SET time_zone = '+00:00'",
        # Invalid values are errors, not warnings: strict mode added to the server's own modes.
        "SET SESSION sql_mode = "
        "TRIM(BOTH ',' FROM CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))",
    )
    snapshot_sql = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    generated_key_sql = "SELECT LAST_INSERT_ID()"
    default_values = " () VALUES ()"
    qualifier_is_catalog = True  # `sakila.film` is table film of database sakila
    value_rules = ValueRules(non_finite=frozenset())  # DOUBLE holds no infinity or NaN
    wide_text_as_utf8 = True  # Connector/ODBC's wide text would end at a stored U+0000
    name_kinds: ClassVar[dict[str, Kind]] = {
        # MySQL converts TIMESTAMP to and from the session zone (UTC here); DATETIME is naive.
        "timestamp": Kind.TIMESTAMPTZ,
        "bit": Kind.BOOLEAN,
        "year": Kind.INTEGER,
        # ENUM and SET sort by their position in the declaration but compare as text, so an
        # order over them would not be one a keyset can follow: served and filtered as text.
        "enum": Kind.UNKNOWN,
        "set": Kind.UNKNOWN,
        "int unsigned": Kind.INTEGER,
        "bigint unsigned": Kind.INTEGER,
        "smallint unsigned": Kind.INTEGER,
        "tinyint unsigned": Kind.INTEGER,
        "mediumint unsigned": Kind.INTEGER,
        "decimal unsigned": Kind.DECIMAL,
        "double unsigned": Kind.FLOAT,
    }
    # Connector/ODBC names tinyint(1) (BOOLEAN) just TINYINT: the declared type tells.
    declared_types_sql = (
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?"
    )
    lost_connection_markers = (
        "server has gone away",
        "lost connection",
        "can't connect",
        "connection was killed",
        "server shutdown in progress",
    )

    def refined(self, found: ColumnType) -> ColumnType:
        if found.db_type.lower().replace(" ", "").startswith("tinyint(1)"):
            return ColumnType(Kind.BOOLEAN, found.db_type)  # what BOOLEAN is in MySQL
        return found

    def render_call(self, procedure: TableRef, params: Sequence[tuple[str, str]]) -> CallPlan:
        # OUT and INOUT go through session variables, read back by a SELECT after the CALL.
        steps: list[tuple[str, tuple[str, ...]]] = []
        marks: list[str] = []
        bound: list[str] = []
        outs: list[str] = []
        for name, direction in params:
            variable = f"@bh_{len(marks)}"
            if direction == "in":
                marks.append("?")
                bound.append(name)
                continue
            marks.append(variable)
            outs.append(f"{variable} AS {self.quote(name)}")
            if direction == "inout":
                steps.append((f"SET {variable} = ?", (name,)))
        steps.append((f"CALL {self.table(procedure)}({', '.join(marks)})", tuple(bound)))
        if outs:
            steps.append((f"SELECT {', '.join(outs)}", ()))
        return CallPlan(tuple(steps), bool(outs))

    def classify(self, sqlstate: str, message: str) -> type[errors.SourceError]:
        return mysql_errors.classify(message) or super().classify(sqlstate, message)

    def explain(self, sqlstate: str, message: str) -> str | None:
        return mysql_errors.explain(message)

    def refine(
        self, failure: errors.SourceError, sql: str, params: Sequence[Any]
    ) -> errors.SourceError:
        return mysql_errors.refine(failure, sql, params)

    def reports_failure(self, sqlstate: str, message: str) -> bool:
        # Connector/ODBC reports some server errors on prepared statements (an invalid ENUM
        # value: 1265) as SQLSTATE 01000 with success; the statement wrote nothing.
        return mysql_errors.classify(message) is not None

    def bind(self, value: Any) -> Any:
        low, high = INT64
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            return Decimal(value)  # BIGINT UNSIGNED; pyodbc binds ints as signed 64-bit only
        if isinstance(value, dt.datetime):
            # Connector/ODBC drops the microseconds of a bound TIMESTAMP; text keeps them.
            return super().bind(value).isoformat(" ")
        return super().bind(value)

    fallback_kinds = frozenset(
        {Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.BOOLEAN}
    )
    naive_utc = frozenset()  # TIMESTAMP is fetched as text

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        # Connector/ODBC drops TIME's fractional seconds and cannot represent durations or
        # zero dates; DECIMAL as text is exact and skips a Decimal object per value.
        return column_type.kind in _AS_TEXT

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS CHAR)"

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        return _DECODERS.get(column_type.kind) or super().decoder(column_type)

    def typed_null(self, param_type: str) -> str:
        return f"CAST(NULL AS {_PARAM_TYPES[param_type]})"

    def describe_query(self, sql: str) -> tuple[str, ...] | None:
        # A temporary table made from no rows of the query has its columns' types.
        return (
            f"CREATE OR REPLACE TEMPORARY TABLE bh_probe AS SELECT * FROM ({sql}) bh_q LIMIT 0",
            "SHOW COLUMNS FROM bh_probe",  # Field, Type, ...: temporary tables are not in
            # information_schema
            "DROP TEMPORARY TABLE bh_probe",
        )

    def compile_steps(self, pieces: Sequence[str]) -> tuple[Step, ...]:
        # PREPARE parses and resolves every table and column; nothing runs.
        return (
            ("SET @bh_check = ?", ("?".join(pieces),)),
            ("PREPARE bh_check FROM @bh_check", ()),
            ("DEALLOCATE PREPARE bh_check", ()),
        )

    def routine_lookup(self, ref: TableRef) -> Step | None:
        where = "ROUTINE_SCHEMA = ?" if ref.schema else "ROUTINE_SCHEMA = DATABASE()"
        sql = "SELECT ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_NAME = ? AND "
        sql += where
        return sql, (ref.name, *([ref.schema] if ref.schema else []))
