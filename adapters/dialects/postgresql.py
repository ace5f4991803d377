"""PostgreSQL through psqlODBC: sessions run in UTC so `timestamptz` values come back exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from adapters.dialects.base import CallPlan, Decoder, Dialect, Step
from adapters.types import ColumnType, Kind, TableRef


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    dbms_names = ("postgresql",)
    session_setup = ("SET TIME ZONE 'UTC'",)
    odbc_options = "BoolsAsChar=0"  # booleans as SQL_BIT (Python bool), not the text '1'/'0'
    snapshot_sql = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    server_cursor = True  # psqlODBC would otherwise hold a whole result in client memory
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

    def render_call(self, procedure: TableRef, params: Sequence[tuple[str, str]]) -> CallPlan:
        # CALL returns one row holding the OUT and INOUT values; OUT arguments are NULL.
        plan = super().render_call(procedure, params)
        ((sql, bound),) = plan.steps
        return replace(plan, steps=((sql.removeprefix("{").removesuffix("}"), bound),))

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        # numeric::text is exact with its scale; uuid::text is lower case. Both are what the
        # API serves, and skip psqlODBC → Decimal / upper-case GUID conversions per value.
        return column_type.kind in (Kind.DECIMAL, Kind.UUID)

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS TEXT)"

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        if column_type.kind is Kind.UUID:
            return None  # fetched as text, already canonical
        return super().decoder(column_type)

    def compile_steps(self, pieces: Sequence[str]) -> tuple[Step, ...]:
        # PREPARE parses and plans (every table, column and function must exist); nothing runs.
        marked = "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], 1)) + pieces[-1]
        return ((f"PREPARE bh_check AS {marked}", ()), ("DEALLOCATE bh_check", ()))

    def routine_lookup(self, ref: TableRef) -> Step | None:
        where = "n.nspname = ?" if ref.schema else "n.nspname = ANY (current_schemas(false))"
        sql = (
            "SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END "
            "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE p.proname = ? AND {where}"
        )
        return sql, (ref.name, *([ref.schema] if ref.schema else []))
