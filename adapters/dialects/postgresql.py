"""PostgreSQL through psqlODBC: sessions run in UTC so `timestamptz` values come back exact."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from bridgehead.adapters import errors
from bridgehead.adapters.dialects.base import CallPlan, Dialect, Step
from bridgehead.adapters.dialects.decoders import Decoder, instant, parsed, time_text
from bridgehead.adapters.dialects.refusals import (
    CHECK_FIX,
    CHILDREN_EXIST_FIX,
    NOT_NULL_FIX,
    PARENT_MISSING_FIX,
    UNIQUE_FIX,
    refusal,
)
from bridgehead.adapters.dialects.typenames import base_type_name
from bridgehead.adapters.types import ColumnType, Kind, TableRef, ValueRules

UNSIZED_VARCHAR = 255

_COLUMN = re.compile(r'null value in column "([^"]+)"')
_CONSTRAINT = re.compile(r'violates (?:foreign key |unique |check )?constraint "([^"]+)"')
_KEY = re.compile(r"DETAIL:\s+Key \(([^()]*)\)=")


def _explain_constraint(sqlstate: str, message: str) -> str | None:
    """Names from PostgreSQL's own wording of 23502/23503/23505/23514 (lc_messages English)."""
    constraint = _CONSTRAINT.search(message)
    name = constraint.group(1) if constraint else None
    key = _KEY.search(message)
    column = key.group(1) if key and "," not in key.group(1) else None
    match sqlstate:
        case "23502":
            found = _COLUMN.search(message)
            return refusal(
                "not-null constraint", NOT_NULL_FIX, column=found.group(1) if found else None
            )
        case "23503":
            fix = CHILDREN_EXIST_FIX if "update or delete on" in message else PARENT_MISSING_FIX
            return refusal("foreign key constraint", fix, column=column, constraint=name)
        case "23505":
            return refusal("unique constraint", UNIQUE_FIX, column=column, constraint=name)
        case "23514":
            return refusal("check constraint", CHECK_FIX, constraint=name)
    return None


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    dbms_names = ("postgresql",)
    session_setup = ("SET TIME ZONE 'UTC'",)
    odbc_options = "BoolsAsChar=0"  # booleans as SQL_BIT (Python bool), not the text '1'/'0'
    snapshot_sql = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    value_rules = ValueRules(keeps_nul=False)  # text types cannot hold U+0000
    name_kinds: ClassVar[dict[str, Kind]] = {
        "timetz": Kind.STRING,
        "time with time zone": Kind.STRING,
        "interval": Kind.STRING,
        "oid": Kind.INTEGER,
        # Served and filtered as their text: json and xml have no equality or order, jsonb's
        # order is not text's, and money's text carries a currency symbol.
        "json": Kind.UNKNOWN,
        "jsonb": Kind.UNKNOWN,
        "xml": Kind.UNKNOWN,
        "money": Kind.UNKNOWN,
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

    def explain(self, sqlstate: str, message: str) -> str | None:
        return _explain_constraint(sqlstate, message)

    def refined(self, found: ColumnType) -> ColumnType:
        if found.kind is Kind.STRING and not self.knows_type_name(found.db_type):
            # An enum (or another type psqlODBC reports as varchar): text is only its form,
            # without text's operators (LIKE) or order, so it is served and compared as text.
            return ColumnType(Kind.UNKNOWN, found.db_type)
        return found

    def declared_length(self, db_type: str, sql_type: int | None, size: int | None) -> int | None:
        # psqlODBC reports a varchar without a length as its MaxVarcharSize (255): that size is
        # not a declaration, so such columns are left to the database's own check.
        if base_type_name(db_type) == "varchar" and size == UNSIZED_VARCHAR:
            return None
        return super().declared_length(db_type, sql_type, size)

    def classify(self, sqlstate: str, message: str) -> type[errors.SourceError]:
        if sqlstate == "0A000" and "cannot perform INSERT RETURNING" in message:
            return errors.WriteRewritten  # an INSERT rule (DO INSTEAD) rewrote the statement
        return super().classify(sqlstate, message)

    def render_call(self, procedure: TableRef, params: Sequence[tuple[str, str]]) -> CallPlan:
        # CALL returns one row holding the OUT and INOUT values; OUT arguments are NULL.
        plan = super().render_call(procedure, params)
        ((sql, bound),) = plan.steps
        return replace(plan, steps=((sql.removeprefix("{").removesuffix("}"), bound),))

    # Dates and times may be infinity, -infinity, BC or past year 9999, which psqlODBC turns
    # into other dates without a word (infinity became today): they are fetched as text and
    # parsed here, and what does not parse is served as PostgreSQL wrote it. numeric may be
    # NaN or Infinity; float8 may be Infinity or NaN.
    fallback_kinds = frozenset(
        {Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.DECIMAL, Kind.FLOAT}
    )
    naive_utc = frozenset()  # timestamptz is fetched as text with its offset

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        # numeric::text is exact with its scale; uuid::text is lower case. Both are what the
        # API serves, and skip psqlODBC → Decimal / upper-case GUID conversions per value.
        return column_type.kind in _AS_TEXT

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS TEXT)"

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        if column_type.kind is Kind.UUID:
            return None  # fetched as text, already canonical
        return _DECODERS.get(column_type.kind) or super().decoder(column_type)

    def param_mark(self, param_type: str) -> str:
        # psqlODBC sends parameters untyped: `SELECT :flag` would answer the text '1'.
        return f"CAST(? AS {_PARAM_TYPES[param_type]})"

    def wrap_query(self, sql: str, columns: Sequence[tuple[str, ColumnType]]) -> str | None:
        # psqlODBC turns infinity dates into today and drops BC: such columns come as text.
        # A plain projection over a subquery keeps its order in PostgreSQL (the subquery scan
        # feeds the projection row by row; nothing re-sorts or hashes it).
        names = [name for name, _ in columns]
        if len(set(names)) != len(names) or not any(self.fetch_as_text(t) for _, t in columns):
            return None
        picks = []
        for name, column_type in columns:
            inner = f"bh_q.{self.quote(name)}"
            as_text = self.fetch_as_text(column_type)
            picks.append(f"{self.text_cast(inner)} AS {self.quote(name)}" if as_text else inner)
        return f"SELECT {', '.join(picks)} FROM ({sql}) AS bh_q"

    def typed_null(self, param_type: str) -> str:
        return f"CAST(NULL AS {_PARAM_TYPES[param_type]})"

    def cursor_statements(self, sql: str, batch_size: int) -> tuple[str, str] | None:
        # psqlODBC would otherwise hold a whole result in client memory; the cursor ends
        # with the transaction it was declared in.
        declare = f"DECLARE bh_stream NO SCROLL CURSOR FOR {sql}"
        return declare, f"FETCH {int(batch_size)} FROM bh_stream"

    def describe_query(self, sql: str) -> tuple[str, ...] | None:
        return (
            f"CREATE OR REPLACE TEMP VIEW bh_probe AS {sql}",
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
            "WHERE attrelid = 'pg_temp.bh_probe'::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            "DROP VIEW pg_temp.bh_probe",
        )

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


_PARAM_TYPES = {
    "string": "text",
    "integer": "bigint",
    "decimal": "numeric",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "time": "time",
    "timestamp": "timestamp",
    "uuid": "uuid",
}
_AS_TEXT = frozenset(
    {Kind.DECIMAL, Kind.UUID, Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ}
)
_DECODERS: dict[Kind, Decoder] = {
    Kind.DATE: parsed(dt.date.fromisoformat),
    Kind.TIME: parsed(time_text),
    Kind.TIMESTAMP: parsed(dt.datetime.fromisoformat),
    Kind.TIMESTAMPTZ: instant,
}
