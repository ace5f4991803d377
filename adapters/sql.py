"""A tiny SQL statement model: what the API may ask of a source, rendered by its dialect.

The model says what, never how: select these columns of this table where..., insert, update
or delete these rows, run this named query, call this procedure. It holds only identifiers
(checked against the config and introspection before a node is built), the SQL the config's
owner wrote, and values (always rendered as placeholders, then bound). Rendering never sees
request text, so nothing a caller sends can become SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridgehead.adapters.types import ColumnType, TableRef


class Op(StrEnum):
    """A comparison of a column with a value; the dialects write each one in SQL."""

    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    LIKE = "like"


@dataclass(frozen=True, slots=True)
class Compare:
    column: str
    op: Op
    value: Any
    as_text: bool = False
    """Compare the column's text (a type served as text, with no comparison of its own)."""


@dataclass(frozen=True, slots=True)
class In:
    column: str
    values: tuple[Any, ...]
    as_text: bool = False


LIKE_ESCAPE = "!"
"""The escape character of every LIKE pattern the API binds (`!%`, `!_`, `!!` are literal)."""


@dataclass(frozen=True, slots=True)
class IsNull:
    column: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Condition, ...]


Condition = Compare | In | IsNull | Not | And | Or


@dataclass(frozen=True, slots=True)
class OrderBy:
    column: str
    descending: bool = False
    nullable: bool = False
    """Nullable columns sort NULL as the largest value on every DBMS (last ascending)."""


@dataclass(frozen=True, slots=True)
class Select:
    table: TableRef
    columns: tuple[str, ...]
    where: Condition | None = None
    order: tuple[OrderBy, ...] = ()
    limit: int | None = None
    as_text: frozenset[str] = frozenset()
    """Columns to fetch as text (see Dialect.fetch_as_text)."""
    lock: bool = False
    """Lock the selected rows until the transaction ends (SELECT ... FOR UPDATE)."""
    offset: int = 0
    """Rows to skip before the first one returned (with an order and a limit)."""


@dataclass(frozen=True, slots=True)
class Insert:
    table: TableRef
    columns: tuple[str, ...]
    values: tuple[Any, ...]
    returning: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Update:
    table: TableRef
    columns: tuple[str, ...]
    values: tuple[Any, ...]
    where: Condition


@dataclass(frozen=True, slots=True)
class Delete:
    table: TableRef
    where: Condition


@dataclass(frozen=True, slots=True)
class Query:
    """A named query: SQL the config's owner wrote, split where its parameters go."""

    pieces: tuple[str, ...]
    """The statement's text around its parameters (one more piece than parameters)."""
    types: tuple[str, ...] = ()
    """Each parameter's declared type (`string`, `date`, ...), in placeholder order."""
    values: tuple[Any, ...] = ()
    """Each parameter's canonical value, in placeholder order (none while it is described)."""
    columns: tuple[tuple[str, ColumnType], ...] = ()
    """Its result columns as the database described them; () if not described."""


@dataclass(frozen=True, slots=True)
class Call:
    """A configured procedure called with its parameters' values."""

    procedure: TableRef
    params: tuple[tuple[str, str], ...]
    """Each parameter's name and direction (`in`, `out`, `inout`), in declared order."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """The canonical value of each `in` and `inout` parameter, by name."""


@dataclass(slots=True)
class Rendered:
    sql: str
    params: list[Any] = field(default_factory=list)
