"""A tiny SQL statement model: what the API may ask of a table, rendered by a dialect.

The model holds only column names (checked against the config and introspection before a
node is built) and values (always rendered as `?` placeholders). Rendering never sees
request text, so nothing a caller sends can become SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bridgehead.adapters.types import TableRef


class Op(StrEnum):
    EQ = "="
    NEQ = "<>"
    GT = ">"
    GTE = ">="
    LT = "<"
    LTE = "<="
    LIKE = "LIKE"


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


@dataclass(slots=True)
class Rendered:
    sql: str
    params: list[Any] = field(default_factory=list)
