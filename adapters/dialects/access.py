"""Microsoft Access (Jet/ACE): bracket quoting, `SELECT TOP n`, `IIF` instead of `CASE`."""

from __future__ import annotations

from typing import ClassVar

from bridgehead.adapters.dialects.base import Dialect
from bridgehead.adapters.types import Kind


class AccessDialect(Dialect):
    name = "access"
    dbms_names = ("access",)
    quote_open = "["
    quote_close = "]"
    returning = False
    lock_suffix = ""
    name_kinds: ClassVar[dict[str, Kind]] = {
        "counter": Kind.INTEGER,
        "long": Kind.INTEGER,
        "short": Kind.INTEGER,
        "byte": Kind.INTEGER,
        "currency": Kind.DECIMAL,
        "single": Kind.FLOAT,
        "yesno": Kind.BOOLEAN,
        "bit": Kind.BOOLEAN,
        "memo": Kind.STRING,
        "longchar": Kind.STRING,
        "longbinary": Kind.BINARY,
        "guid": Kind.UUID,
    }

    def limit_prefix(self, limit: int | None) -> str:
        return "" if limit is None else f"TOP {int(limit)} "

    offsets = False  # TOP n only

    def limit_suffix(self, limit: int | None, offset: int = 0) -> str:
        return ""

    def null_rank(self, quoted: str) -> str:
        return f"IIF({quoted} IS NULL, 1, 0)"
