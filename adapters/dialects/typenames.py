"""How DBMS type names map onto Bridgehead's value kinds: the portable names, the ODBC
type codes as the fallback, integer widths, and what a declared type says of its size."""

from __future__ import annotations

import re

from bridgehead.adapters.types import Kind

NAME_KINDS: dict[str, Kind] = {
    **dict.fromkeys(
        [
            "int",
            "integer",
            "smallint",
            "tinyint",
            "bigint",
            "mediumint",
            "int2",
            "int4",
            "int8",
            "serial",
            "bigserial",
            "smallserial",
            "serial4",
            "serial8",
        ],
        Kind.INTEGER,
    ),
    **dict.fromkeys(["decimal", "numeric", "dec", "money", "smallmoney"], Kind.DECIMAL),
    **dict.fromkeys(
        ["real", "float", "double", "double precision", "float4", "float8"], Kind.FLOAT
    ),
    **dict.fromkeys(["boolean", "bool"], Kind.BOOLEAN),
    **dict.fromkeys(
        [
            "char",
            "varchar",
            "nchar",
            "nvarchar",
            "text",
            "ntext",
            "character",
            "bpchar",
            "character varying",
            "national character varying",
            "clob",
            "nclob",
            "citext",
            "name",
            "json",
            "jsonb",
            "xml",
            "longtext",
            "mediumtext",
            "tinytext",
            "string",
        ],
        Kind.STRING,
    ),
    "date": Kind.DATE,
    **dict.fromkeys(["time", "time without time zone"], Kind.TIME),
    **dict.fromkeys(["timestamp", "datetime", "timestamp without time zone"], Kind.TIMESTAMP),
    **dict.fromkeys(["timestamptz", "timestamp with time zone"], Kind.TIMESTAMPTZ),
    **dict.fromkeys(["uuid", "uniqueidentifier", "guid"], Kind.UUID),
    **dict.fromkeys(
        ["binary", "varbinary", "blob", "bytea", "longblob", "mediumblob", "tinyblob", "image"],
        Kind.BINARY,
    ),
}

# ODBC SQL type codes (sql.h / sqlext.h), the fallback when a type name is not known.
CODE_KINDS: dict[int, Kind] = {
    **dict.fromkeys((4, 5, -5, -6), Kind.INTEGER),
    **dict.fromkeys((2, 3), Kind.DECIMAL),
    **dict.fromkeys((6, 7, 8), Kind.FLOAT),
    -7: Kind.BOOLEAN,
    **dict.fromkeys((1, 12, -1, -8, -9, -10), Kind.STRING),
    91: Kind.DATE,
    92: Kind.TIME,
    93: Kind.TIMESTAMP,
    -11: Kind.UUID,
    **dict.fromkeys((-2, -3, -4), Kind.BINARY),
}

INTEGER_BITS: dict[str, int] = {
    **dict.fromkeys(("tinyint",), 8),
    **dict.fromkeys(("smallint", "int2", "smallserial", "serial2"), 16),
    **dict.fromkeys(("mediumint",), 24),
    **dict.fromkeys(("int", "integer", "int4", "serial", "serial4"), 32),
    **dict.fromkeys(("bigint", "int8", "bigserial", "serial8"), 64),
}


def base_type_name(db_type: str) -> str:
    """`NUMERIC(12, 2)` → `numeric`; `timestamp(3) with time zone` → `timestamp with time zone`."""
    return re.sub(r"\s*\([^)]*\)", "", db_type).strip().lower()


SIZED_CODES = frozenset({1, 12, -8, -9, -2, -3})
"""SQL_CHAR, SQL_VARCHAR, SQL_WCHAR, SQL_WVARCHAR, SQL_BINARY, SQL_VARBINARY."""


def declared_precision(db_type: str) -> tuple[int | None, int | None]:
    match = re.search(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", db_type)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2) or 0)
