# What a sample database holds, read from its own catalog (sqlite pragmas, information_schema,
# pg_catalog) and never from Bridgehead's introspection: every table and view, its columns
# with the kind of value the documented mapping gives them, its primary key, the columns in a
# foreign key, its unique constraints, and whether triggers or rules rewrite its rows (the
# catalog queries per DBMS are in samplecatalogs.py); and how each dialect casts a value to
# its text for reference reads.
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyodbc

Query = Callable[[str], list[tuple[Any, ...]]]
ORDERABLE = frozenset(
    {"integer", "decimal", "float", "boolean", "text", "date", "time", "timestamp", "timestamptz"}
    | {"uuid"}
)

_KINDS: dict[str, tuple[str, ...]] = {
    "integer": ("smallint", "integer", "bigint", "int", "tinyint", "mediumint"),
    "decimal": ("numeric", "decimal"),
    "float": ("real", "double precision", "double", "float"),
    "boolean": ("boolean", "bool", "bit"),
    "text": (
        "character varying",
        "character",
        "text",
        "varchar",
        "char",
        "nvarchar",
        "nchar",
        "clob",
        "tinytext",
        "mediumtext",
        "longtext",
    ),
    "date": ("date",),
    "time": ("time", "time without time zone"),
    "timestamp": ("timestamp", "timestamp without time zone", "datetime"),
    "timestamptz": ("timestamp with time zone",),
    "binary": ("bytea", "blob", "varbinary", "binary", "tinyblob", "mediumblob", "longblob"),
    "uuid": ("uuid",),
}
_KIND_OF = {name: kind for kind, names in _KINDS.items() for name in names}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    """integer, decimal, float, boolean, text, date, time, timestamp, timestamptz, binary,
    uuid, or unknown (a type the documented mapping serves as the database's text)."""
    scale: int | None = None
    foreign: bool = False
    declared: str = ""


@dataclass(frozen=True)
class Relation:
    resource: str
    name: str
    """The table's own name, as SQL on a connection to its database names it."""
    table: str
    """The name as the config's `table:` gives it."""
    view: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    primary: bool
    """Whether key is the table's primary key (else a unique column found in the data)."""
    rewritten: bool
    """Whether triggers or rules may change a written row."""
    unique: tuple[tuple[str, ...], ...]
    """Column sets of the unique constraints besides the primary key."""
    insert_rules: bool = False
    """Whether a rule rewrites inserts into another table (PostgreSQL DO INSTEAD)."""

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass
class Dialect:
    name: str
    quote: Callable[[str], str]
    as_text: Callable[[str, Column], str]


def _ansi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _pg_text(sql: str, column: Column) -> str:
    if column.kind == "binary":
        return f"encode({sql}, 'hex')"
    if column.declared == "character":  # a cast to text would strip char(n)'s padding
        return f"CASE WHEN {sql} IS NULL THEN NULL ELSE format('%s', {sql}) END"
    return f"({sql})::text"


def _maria_text(sql: str, column: Column) -> str:
    return f"HEX({sql})" if column.kind == "binary" else f"CAST({sql} AS CHAR)"


def _sqlite_text(sql: str, column: Column) -> str:
    return f"hex({sql})" if column.kind == "binary" else f"CAST({sql} AS TEXT)"


DIALECTS = {
    "sqlite": Dialect("sqlite", _ansi, _sqlite_text),
    "postgresql": Dialect("postgresql", _ansi, _pg_text),
    "mariadb": Dialect("mariadb", _backtick, _maria_text),
}


def kind_of(declared: str) -> str:
    """The documented mapping's kind for a declared type name such as NUMERIC(10,2)."""
    base = re.sub(r"\(.*?\)", "", declared.lower()).replace(" unsigned", "").strip()
    if re.fullmatch(r"(tinyint|bit)\(1\)", declared.lower().strip()):
        return "boolean"
    if base in _KIND_OF:
        return _KIND_OF[base]
    return "unknown"


def scale_of(declared: str) -> int | None:
    found = re.search(r"\(\s*\d+\s*,\s*(\d+)\s*\)", declared)
    return int(found.group(1)) if found else None


def resource_names(tables: Sequence[str]) -> dict[str, str]:
    """A resource name per table: the table's name made valid and unique (case-insensitively)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for table in tables:
        name = re.sub(r"[^A-Za-z0-9_\-]", "_", table)
        name = name if re.match(r"[A-Za-z_]", name) else "_" + name
        base, n = name[:60], 1
        while name.lower() in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name.lower())
        names[table] = name
    return names


def sqlite_query(path: Path) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(sql).fetchall()
        db.close()
        return rows

    return query


def odbc_query(connection_string: str, setup: str, wide_as_utf8: bool = False) -> Query:
    """Rows as the driver gives them; `wide_as_utf8` reads wide text as UTF-8, as the agent
    does on MariaDB (Connector/ODBC's UTF-16 form cuts some non-ASCII text short)."""

    def query(sql: str) -> list[tuple[Any, ...]]:
        connection = pyodbc.connect(connection_string, autocommit=True, timeout=10)
        if wide_as_utf8:
            connection.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
        try:
            connection.execute(setup)
            return [tuple(row) for row in connection.execute(sql).fetchall()]
        finally:
            connection.close()

    return query


@dataclass
class Found:
    """A table or view as the catalog describes it."""

    name: str
    view: bool
    columns: list[Column]
    key: list[str]
    rewritten: bool
    unique: list[tuple[str, ...]]
    insert_rules: bool = False
    """Whether a rule rewrites inserts into another table (PostgreSQL DO INSTEAD)."""


def unique_column(query: Query, dialect: Dialect, table: str, columns: Sequence[Column]) -> str:
    """The first orderable column whose values are all present and distinct, or ''."""
    q = dialect.quote
    for column in columns:
        if column.kind not in ORDERABLE:
            continue
        c = q(column.name)
        total, distinct, present = query(
            f"SELECT COUNT(*), COUNT(DISTINCT {c}), COUNT({c}) FROM {q(table)}"
        )[0]
        if total == distinct == present:
            return column.name
    return ""


def relations(
    query: Query, dialect: Dialect, found: Sequence[Found], schema: str
) -> dict[str, Relation]:
    """Relations by resource name; a table without a primary key (a view) is keyed by its first
    unique column when it has one, as a user would configure it."""
    names = resource_names([f.name for f in found])
    out = {}
    for f in found:
        key = f.key or [unique_column(query, dialect, f.name, f.columns)]
        out[names[f.name]] = Relation(
            resource=names[f.name],
            name=f.name,
            table=f"{schema}.{f.name}" if schema else f.name,
            view=f.view,
            columns=tuple(f.columns),
            key=tuple(k for k in key if k),
            primary=bool(f.key),
            rewritten=f.rewritten,
            unique=tuple(f.unique),
            insert_rules=f.insert_rules,
        )
    return out
