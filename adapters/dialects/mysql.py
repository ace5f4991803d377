"""MySQL and MariaDB: backtick quoting, UTC sessions, `TIMESTAMP` is an instant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, ClassVar

from adapters.dialects.base import CallPlan, Decoder, Dialect, Step, parsed_or_text
from adapters.types import ColumnType, Kind, TableRef

# MySQL TIME is a duration (-838:59:59 to 838:59:59): a time of day when it is one.
_time_or_text = parsed_or_text(dt.time.fromisoformat)


class MySQLDialect(Dialect):
    name = "mysql"
    dbms_names = ("mysql", "mariadb")
    quote_open = "`"
    quote_close = "`"
    session_setup = ("SET time_zone = '+00:00'",)
    snapshot_sql = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    generated_key_sql = "SELECT LAST_INSERT_ID()"
    default_values = " () VALUES ()"
    qualifier_is_catalog = True  # `sakila.film` is table film of database sakila
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

    def bind(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            # Connector/ODBC drops the microseconds of a bound TIMESTAMP; text keeps them.
            return super().bind(value).isoformat(" ")
        return super().bind(value)

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        # Connector/ODBC drops TIME's fractional seconds and cannot represent durations;
        # DECIMAL as text is exact and skips a Decimal object per value.
        return column_type.kind in (Kind.TIME, Kind.DECIMAL)

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS CHAR)"

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        if column_type.kind is Kind.TIME:
            return _time_or_text
        return super().decoder(column_type)

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
