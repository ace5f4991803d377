"""How a DBMS writes the statement model of `adapters.sql`: quoting, conditions, paging, locks.

`Rendering` holds the ANSI way of writing each statement; `Dialect` inherits it, and each
DBMS's dialect overrides only the pieces it writes differently (its quotes, its row limit, its
text cast). Identifiers come only from the model (names checked against the config and
introspection); every value becomes a `?` placeholder with its bound value beside it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

from bridgehead.adapters.dialects.decoders import utc_naive
from bridgehead.adapters.sql import (
    LIKE_ESCAPE,
    And,
    Compare,
    Condition,
    Delete,
    In,
    Insert,
    IsNull,
    Not,
    Op,
    Or,
    OrderBy,
    Rendered,
    Select,
    Update,
)
from bridgehead.adapters.types import TableRef

COMPARISONS: dict[Op, str] = {
    Op.EQ: "=",
    Op.NEQ: "<>",
    Op.GT: ">",
    Op.GTE: ">=",
    Op.LT: "<",
    Op.LTE: "<=",
    Op.LIKE: "LIKE",
}
"""Each comparison of the model as SQL writes it (the same in every dialect)."""


class Rendering:
    """The ANSI rendering of statements; dialects override the parts their DBMS differs in."""

    quote_open: ClassVar[str] = '"'
    quote_close: ClassVar[str] = '"'
    returning: ClassVar[bool] = True
    """Whether INSERT ... RETURNING gives back the stored row (else it is read again by key)."""
    default_values: ClassVar[str] = " DEFAULT VALUES"
    """An INSERT of no columns (every value the table's default)."""
    lock_suffix: ClassVar[str] = " FOR UPDATE"
    """Appended to a SELECT that must lock its rows until the transaction ends."""
    lock_hint: ClassVar[str] = ""
    """Written after the table name of a locking SELECT (SQL Server's table hints)."""
    unordered: ClassVar[str | None] = None
    """An ORDER BY for limited statements with no order, where the DBMS demands one."""
    offsets: ClassVar[bool] = True
    """Whether a limited SELECT can skip rows (OFFSET)."""

    # -- identifiers -------------------------------------------------------------------------

    def quote(self, identifier: str) -> str:
        escaped = identifier.replace(self.quote_close, self.quote_close * 2)
        return f"{self.quote_open}{escaped}{self.quote_close}"

    def table(self, ref: TableRef) -> str:
        name = self.quote(ref.name)
        return f"{self.quote(ref.schema)}.{name}" if ref.schema else name

    # -- statements --------------------------------------------------------------------------

    def render_select(self, select: Select) -> Rendered:
        out = Rendered("")
        cols = ", ".join(self.column(c, c in select.as_text) for c in select.columns)
        parts = [
            "SELECT ",
            self.limit_prefix(select.limit),
            cols,
            " FROM ",
            self.table(select.table),
            self.lock_hint if select.lock else "",
        ]
        if select.where is not None:
            parts += [" WHERE ", self.condition(select.where, out.params)]
        if select.order:
            terms = (self.order_term(o, self._order_column(select, o.column)) for o in select.order)
            parts += [" ORDER BY ", ", ".join(terms)]
        elif select.limit is not None and self.unordered:
            parts += [" ORDER BY ", self.unordered]
        parts.append(self.limit_suffix(select.limit, select.offset))
        if select.lock:
            parts.append(self.lock_suffix)
        out.sql = "".join(parts)
        return out

    def _order_column(self, select: Select, name: str) -> str:
        """The column an order term sorts by: qualified by its table where the selected value
        is cast to text, since ORDER BY binds a bare name to the output column of that name
        first, and would sort the text instead of the column itself."""
        quoted = self.quote(name)
        return f"{self.table(select.table)}.{quoted}" if name in select.as_text else quoted

    def column(self, name: str, as_text: bool = False) -> str:
        quoted = self.quote(name)
        return f"{self.text_cast(quoted)} AS {quoted}" if as_text else quoted

    def text_cast(self, quoted: str) -> str:
        return f"CAST({quoted} AS VARCHAR(4000))"

    def limit_prefix(self, limit: int | None) -> str:
        return ""

    def limit_suffix(self, limit: int | None, offset: int = 0) -> str:
        if limit is None:
            return ""
        return f" LIMIT {int(limit)}" + (f" OFFSET {int(offset)}" if offset else "")

    def render_insert(self, insert: Insert) -> Rendered:
        out = Rendered("", [self.bind(v) for v in insert.values])
        cols = ", ".join(self.quote(c) for c in insert.columns)
        marks = ", ".join("?" * len(insert.columns))
        into = f"INSERT INTO {self.table(insert.table)}"
        values = f" ({cols}) VALUES ({marks})" if insert.columns else self.default_values
        returning = self.returning_clause(insert.returning) if self.returning else ""
        out.sql = into + values + returning
        return out

    def returning_clause(self, columns: tuple[str, ...]) -> str:
        return " RETURNING " + ", ".join(self.quote(c) for c in columns) if columns else ""

    def render_update(self, update: Update) -> Rendered:
        out = Rendered("", [self.bind(v) for v in update.values])
        sets = ", ".join(f"{self.quote(c)} = ?" for c in update.columns)
        where = self.condition(update.where, out.params)
        out.sql = f"UPDATE {self.table(update.table)} SET {sets} WHERE {where}"
        return out

    def render_delete(self, delete: Delete) -> Rendered:
        out = Rendered("")
        where = self.condition(delete.where, out.params)
        out.sql = f"DELETE FROM {self.table(delete.table)} WHERE {where}"
        return out

    def beyond_sql(self, sql: str, offset: int) -> str | None:
        """A statement giving one row if `sql` gives more than `offset` rows; None where the
        DBMS cannot skip rows."""
        if not self.offsets:
            return None
        order = f" ORDER BY {self.unordered}" if self.unordered else ""
        return f"SELECT 1 FROM ({sql}) bh_rows{order}{self.limit_suffix(1, offset)}"

    # -- order and conditions ----------------------------------------------------------------

    def null_rank(self, quoted: str) -> str:
        """An expression that is 1 for NULL and 0 otherwise, for portable NULL ordering."""
        return f"CASE WHEN {quoted} IS NULL THEN 1 ELSE 0 END"

    def order_term(self, order: OrderBy, quoted: str) -> str:
        direction = " DESC" if order.descending else " ASC"
        if not order.nullable:
            return quoted + direction
        return f"{self.null_rank(quoted)}{direction}, {quoted}{direction}"

    def operand(self, column: str, as_text: bool) -> str:
        quoted = self.quote(column)
        return self.text_cast(quoted) if as_text else quoted

    def condition(self, cond: Condition, params: list[Any]) -> str:
        match cond:
            case Compare(column, op, value, as_text):
                params.append(self.bind(value))
                escape = f" ESCAPE '{LIKE_ESCAPE}'" if op is Op.LIKE else ""
                return f"{self.operand(column, as_text)} {COMPARISONS[op]} ?{escape}"
            case In(column, values, as_text):
                params.extend(self.bind(v) for v in values)
                return f"{self.operand(column, as_text)} IN ({', '.join('?' * len(values))})"
            case IsNull(column):
                return f"{self.quote(column)} IS NULL"
            case Not(IsNull(column)):
                return f"{self.quote(column)} IS NOT NULL"
            case Not(operand):
                return f"NOT ({self.condition(operand, params)})"
            case And(operands) | Or(operands):
                joiner = " AND " if isinstance(cond, And) else " OR "
                return "(" + joiner.join(self.condition(c, params) for c in operands) + ")"
        raise TypeError(f"not a condition: {cond!r}")

    # -- values ------------------------------------------------------------------------------

    def bind(self, value: Any) -> Any:
        """A canonical Python value, ready for the driver's `?` placeholder."""
        if isinstance(value, dt.datetime):
            return utc_naive(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, dt.time):
            return value.isoformat()  # ODBC's TIME struct has no fractional seconds
        return value
