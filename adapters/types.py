"""The column model every adapter reports: a small set of value kinds that the API maps losslessly.

Each dialect maps its DBMS's type names onto a `Kind`; the encoder and the OpenAPI document
work only with kinds. A type no dialect knows becomes `Kind.UNKNOWN`: served as text, and
reported by `bridgehead check`, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Kind(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING = "string"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    UUID = "uuid"
    BINARY = "binary"
    UNKNOWN = "unknown"


ORDERABLE = frozenset(Kind) - {Kind.BINARY, Kind.UNKNOWN}
"""Kinds whose comparison is well defined everywhere: usable in `order` and range filters."""


SERVED_NON_FINITE = frozenset({"Infinity", "-Infinity", "NaN"})
"""How the API spells the non-finite floats (JSON has none)."""


@dataclass(frozen=True, slots=True)
class ValueRules:
    """What a source's database and driver store exactly as sent: a request value they would
    store as something else is refused when it is parsed, never silently changed."""

    keeps_nul: bool = True
    """Whether text may hold U+0000 (PostgreSQL refuses it; the SQLite ODBC driver cuts there)."""
    non_finite: frozenset[str] = SERVED_NON_FINITE
    """The non-finite floats the database stores (SQLite turns NaN into NULL)."""


@dataclass(frozen=True, slots=True)
class ColumnType:
    kind: Kind
    db_type: str
    """The type's name as the database reports it, for docs and diagnostics."""
    precision: int | None = None
    scale: int | None = None
    bounds: tuple[int, int] | None = None
    """The smallest and largest value an INTEGER column holds; None: 64-bit signed."""
    length: int | None = None
    """The most characters (text) or bytes (binary) the column declares; None: no limit known."""
    rules: ValueRules = ValueRules()


INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    has_default: bool = False
    """An insert may leave it out: it has a default, is an identity, serial or auto-increment
    column, is generated, or is SQLite's rowid alias (`INTEGER PRIMARY KEY`)."""


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table or view as the config names it: `schema.name` or just `name`.

    On MySQL and MariaDB the qualifier is the database (the ODBC catalog): `sakila.film`."""

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, dotted: str) -> TableRef:
        schema, dot, name = dotted.rpartition(".")
        return cls(name=name, schema=schema if dot else None)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class TableEntry:
    """A table or view the source's user can see, as a catalog lists it."""

    ref: TableRef
    view: bool = False


@dataclass(frozen=True, slots=True)
class TableInfo:
    ref: TableRef
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None


def with_rules(info: TableInfo, rules: ValueRules) -> TableInfo:
    """The table with its source's value rules on every column's type."""
    columns = tuple(replace(c, type=replace(c.type, rules=rules)) for c in info.columns)
    return replace(info, columns=columns)
