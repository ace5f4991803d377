"""Microsoft SQL Server: bracket quoting, `OFFSET 0 ROWS FETCH NEXT n ROWS ONLY` paging."""

from __future__ import annotations

from typing import ClassVar

from bridgehead.adapters.dialects.base import Dialect
from bridgehead.adapters.sql import Insert, Rendered
from bridgehead.adapters.types import Kind


class SQLServerDialect(Dialect):
    name = "mssql"
    dbms_names = ("microsoft sql server",)
    quote_open = "["
    quote_close = "]"
    name_kinds: ClassVar[dict[str, Kind]] = {
        "bit": Kind.BOOLEAN,
        "datetime2": Kind.TIMESTAMP,
        "smalldatetime": Kind.TIMESTAMP,
        "datetimeoffset": Kind.TIMESTAMPTZ,
        "rowversion": Kind.BINARY,
        "timestamp": Kind.BINARY,  # SQL Server's TIMESTAMP is a row version, not a time
        "sql_variant": Kind.UNKNOWN,
        "int identity": Kind.INTEGER,
        "bigint identity": Kind.INTEGER,
        "numeric identity": Kind.DECIMAL,
    }
    lost_connection_markers = ("communication link failure", "tcp provider")
    unordered = "(SELECT NULL)"  # OFFSET..FETCH is only valid after an ORDER BY
    lock_suffix = ""
    generated_key_sql = "SELECT SCOPE_IDENTITY()"
    lock_hint = " WITH (UPDLOCK, ROWLOCK)"

    def integer_bounds(self, base: str) -> tuple[int, int] | None:
        if base.startswith("tinyint"):
            return 0, 255  # SQL Server's tinyint is unsigned
        return super().integer_bounds(base.removesuffix(" identity"))

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS NVARCHAR(MAX))"

    def returning_clause(self, columns: tuple[str, ...]) -> str:
        return ""

    def render_insert(self, insert: Insert) -> Rendered:
        out = super().render_insert(insert)
        if insert.returning:
            output = " OUTPUT " + ", ".join(f"INSERTED.{self.quote(c)}" for c in insert.returning)
            head, sep, tail = out.sql.partition(" VALUES ")
            if not sep:
                head, sep, tail = out.sql.partition(" DEFAULT VALUES")
            out.sql = head + output + sep + tail
        return out

    def limit_suffix(self, limit: int | None, offset: int = 0) -> str:
        if limit is None:
            return ""
        return f" OFFSET {int(offset)} ROWS FETCH NEXT {int(limit)} ROWS ONLY"
