"""What differs between DBMSs, in one place per DBMS: quoting, paging, types, error classes.

`Dialect` holds the portable defaults (ANSI quoting, `LIMIT`, ODBC type codes, SQLSTATE
classes); each DBMS overrides only what it does differently. Dialects are pure: they turn
statement models into SQL text and driver facts into Bridgehead facts, and do no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from bridgehead.adapters import errors
from bridgehead.adapters.dialects.decoders import (
    Decoder,
    as_bool,
    as_bytes,
    as_utc,
    as_uuid_text,
    utc_naive,
)
from bridgehead.adapters.dialects.typenames import (
    CODE_KINDS,
    INTEGER_BITS,
    NAME_KINDS,
    SIZED_CODES,
    base_type_name,
    declared_precision,
)
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
from bridgehead.adapters.types import ColumnType, Kind, TableRef, ValueRules

_UNAVAILABLE_SQLSTATES = ("08", "28", "HYT01", "57P01", "57P02", "57P03")
_TIMEOUT_SQLSTATES = ("HYT00", "57014", "HY008", "HY018")


Step = tuple[str, tuple[Any, ...]]
"""One statement and its bound values."""


class Dialect:
    """ANSI defaults; subclasses override what their DBMS does differently."""

    name: ClassVar[str] = "ansi"
    dbms_names: ClassVar[tuple[str, ...]] = ()
    """Prefixes of `SQL_DBMS_NAME` (lower case) that select this dialect."""
    quote_open: ClassVar[str] = '"'
    quote_close: ClassVar[str] = '"'
    name_kinds: ClassVar[dict[str, Kind]] = {}
    lost_connection_markers: ClassVar[tuple[str, ...]] = ()
    constraint_markers: ClassVar[tuple[str, ...]] = ()
    """Message fragments of constraint errors for drivers that report them as HY000."""
    generated_key_sql: ClassVar[str | None] = None
    """Reads the key the last INSERT generated, when INSERT ... RETURNING gave no rows."""
    odbc_options: ClassVar[str] = ""
    """Appended to ODBC connection strings once the DBMS is known (driver behaviour switches)."""
    naive_utc: ClassVar[frozenset[Kind]] = frozenset({Kind.TIMESTAMPTZ})
    """Kinds the driver returns as naive datetimes meaning UTC (the sessions run in UTC)."""
    session_setup: ClassVar[tuple[str, ...]] = ()
    """Statements run on every new connection (time zone, encoding)."""
    begin_sql: ClassVar[str | None] = None
    """Starts a write transaction by statement, where the driver's own BEGIN locks too late."""
    snapshot_sql: ClassVar[str | None] = None
    """Run first in a read transaction that must see one consistent state."""
    returning: ClassVar[bool] = True
    """Whether INSERT ... RETURNING gives back the stored row (else it is read again by key)."""
    lock_suffix: ClassVar[str] = " FOR UPDATE"
    """Appended to a SELECT that must lock its rows until the transaction ends."""
    lock_hint: ClassVar[str] = ""
    """Written after the table name of a locking SELECT (SQL Server's table hints)."""
    server_cursor: ClassVar[bool] = False
    """DECLARE ... CURSOR / FETCH n streams any statement from the server (PostgreSQL)."""
    unordered: ClassVar[str | None] = None
    """An ORDER BY for limited statements with no order, where the DBMS demands one."""
    offsets: ClassVar[bool] = True
    """Whether a limited SELECT can skip rows (OFFSET)."""
    fallback_kinds: ClassVar[frozenset[Kind]] = frozenset()
    """Kinds whose columns may hold values the kind cannot carry (PostgreSQL's `infinity`
    dates, MariaDB's zero dates, anything in SQLite): such values are served as text."""
    declared_types_sql: ClassVar[str | None] = None
    """Reads a table's columns' declared types (params: schema or None, table), where they say
    more than the driver's type names."""
    qualifier_is_catalog: ClassVar[bool] = False
    value_rules: ClassVar[ValueRules] = ValueRules()
    """What the database stores as sent (U+0000 in text, non-finite floats)."""
    odbc_value_rules: ClassVar[ValueRules | None] = None
    """The same through this DBMS's ODBC driver, where it differs."""
    wide_text_as_utf8: ClassVar[bool] = False
    """Fetch wide text as UTF-8 (SQL_C_CHAR): the driver's UTF-16 form stops at U+0000."""
    """Whether `a.b` in a table name means database a (the ODBC catalog), not schema a."""

    # -- identifiers -------------------------------------------------------------------------

    def quote(self, identifier: str) -> str:
        escaped = identifier.replace(self.quote_close, self.quote_close * 2)
        return f"{self.quote_open}{escaped}{self.quote_close}"

    def table(self, ref: TableRef) -> str:
        name = self.quote(ref.name)
        return f"{self.quote(ref.schema)}.{name}" if ref.schema else name

    def knows_type_name(self, db_type: str) -> bool:
        """Whether the type's name is one this dialect maps (not a guess from its ODBC code)."""
        base = base_type_name(db_type)
        return base in self.name_kinds or base in NAME_KINDS

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

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        """Whether to fetch this type as text: where the driver would lose precision, or where
        text is what the API serves anyway and the driver's own object costs time."""
        return False

    def limit_prefix(self, limit: int | None) -> str:
        return ""

    def render_insert(self, insert: Insert) -> Rendered:
        out = Rendered("", [self.bind(v) for v in insert.values])
        cols = ", ".join(self.quote(c) for c in insert.columns)
        marks = ", ".join("?" * len(insert.columns))
        into = f"INSERT INTO {self.table(insert.table)}"
        values = f" ({cols}) VALUES ({marks})" if insert.columns else self.default_values
        returning = self.returning_clause(insert.returning) if self.returning else ""
        out.sql = into + values + returning
        return out

    default_values: ClassVar[str] = " DEFAULT VALUES"

    def returning_clause(self, columns: tuple[str, ...]) -> str:
        return " RETURNING " + ", ".join(self.quote(c) for c in columns) if columns else ""

    def render_call(self, procedure: TableRef, params: Sequence[tuple[str, str]]) -> CallPlan:
        """How to call a procedure with (name, direction) params; ODBC's escape by default."""
        marks = ", ".join("?" if d != "out" else "NULL" for _, d in params)
        bound = tuple(n for n, d in params if d != "out")
        outs = any(d != "in" for _, d in params)
        return CallPlan(((f"{{CALL {self.table(procedure)}({marks})}}", bound),), outs)

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

    def param_mark(self, param_type: str) -> str:
        """A named query's placeholder for a parameter of that type (`string`, `date`, ...)."""
        return "?"

    def typed_null(self, param_type: str) -> str:
        """NULL of a named query parameter's type, standing in for it while the query is
        described."""
        return "NULL"

    def wrap_query(self, sql: str, columns: Sequence[tuple[str, ColumnType]]) -> str | None:
        """A named query wrapped so that columns this dialect fetches as text (as it does for
        resources) come as text; None to run the query as it is. The wrapper must keep the
        query's row order, which SQL guarantees of no derived table: only dialects whose DBMS
        keeps it for a plain projection wrap."""
        return None

    def describe_query(self, sql: str) -> tuple[str, ...] | None:
        """Statements that describe a query's result columns, leaving nothing behind: the last
        one answers (name, declared type) rows. `sql` has its parameters as typed NULLs.
        None where the DBMS has no such way (the driver's values are then served as they are)."""
        return None

    def limit_suffix(self, limit: int | None, offset: int = 0) -> str:
        if limit is None:
            return ""
        return f" LIMIT {int(limit)}" + (f" OFFSET {int(offset)}" if offset else "")

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
                return f"{self.operand(column, as_text)} {op.value} ?{escape}"
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

    def column_type(
        self,
        db_type: str,
        *,
        sql_type: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
    ) -> ColumnType:
        base = base_type_name(db_type)
        kind = self.name_kinds.get(base) or NAME_KINDS.get(base)
        if kind is None:
            kind = CODE_KINDS.get(sql_type, Kind.UNKNOWN) if sql_type is not None else Kind.UNKNOWN
        if kind is Kind.DECIMAL and precision is None:
            precision, scale = declared_precision(db_type)
        bounds = self.integer_bounds(base) if kind is Kind.INTEGER else None
        length = None
        if kind in (Kind.STRING, Kind.BINARY):
            length = self.declared_length(db_type, sql_type, precision)
        return self.refined(ColumnType(kind, db_type, precision, scale, bounds, length))

    def refined(self, found: ColumnType) -> ColumnType:
        """The type as this DBMS means it, where its name alone misleads (MySQL's tinyint(1)
        is a boolean); the type found from the name and the ODBC code by default."""
        return found

    def declared_length(self, db_type: str, sql_type: int | None, size: int | None) -> int | None:
        """The most characters (bytes for binary) a text or binary column holds: `(n)` in its
        declared type, else the driver's COLUMN_SIZE for the fixed and varying types (not the
        long ones, whose size is a driver setting); None when neither says."""
        declared = re.search(r"\(\s*(\d+)\s*\)", db_type)
        if declared:
            return int(declared.group(1)) or None
        if sql_type in SIZED_CODES and size is not None and size > 0:
            return size
        return None

    def integer_bounds(self, base: str) -> tuple[int, int] | None:
        """The range of an integer type by its name (`smallint`, `int unsigned`); None: 64-bit."""
        name, _, sign = base.partition(" ")
        bits = INTEGER_BITS.get(name)
        if bits is None:
            return None
        if sign == "unsigned":
            return 0, 2**bits - 1
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def decoder(self, column_type: ColumnType) -> Decoder | None:
        """Turns what the driver returns into the canonical value for the column's kind."""
        match column_type.kind:
            case Kind.BOOLEAN:
                return as_bool
            case Kind.TIMESTAMPTZ:
                return as_utc
            case Kind.UUID:
                return as_uuid_text
            case Kind.BINARY:
                return as_bytes
        return None

    # -- checks (`bridgehead check`) ---------------------------------------------------------

    def compile_steps(self, pieces: Sequence[str]) -> tuple[Step, ...]:
        """Statements that make the DBMS compile a statement without running it (`pieces`: its
        text split where its parameters go); empty where the DBMS offers no such way."""
        return ()

    def routine_lookup(self, ref: TableRef) -> Step | None:
        """A SELECT of the type (PROCEDURE or FUNCTION) of each routine named `ref`."""
        return None

    # -- errors ------------------------------------------------------------------------------

    def classify(self, sqlstate: str, message: str) -> type[errors.SourceError]:
        lowered = message.lower()
        if any(marker in lowered for marker in self.lost_connection_markers):
            return errors.SourceUnavailable
        if sqlstate.startswith("23") or any(m in lowered for m in self.constraint_markers):
            return errors.ConstraintViolated
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return errors.SourceUnavailable
        if sqlstate in _TIMEOUT_SQLSTATES:
            return errors.QueryTimedOut
        if sqlstate.startswith("22"):
            return errors.ValueRejected
        return errors.SourceError

    def explain(self, sqlstate: str, message: str) -> str | None:
        """The caller's detail for a refused statement, naming the column or constraint the
        driver message names (identifiers only, never values); None for the generic detail."""
        return None

    def refine(
        self, failure: errors.SourceError, sql: str, params: Sequence[Any]
    ) -> errors.SourceError:
        """The failure with what only its statement tells (the column a value was for)."""
        return failure

    def reports_failure(self, sqlstate: str, message: str) -> bool:
        """Whether a diagnostic returned with a *successful* statement means it failed (drivers
        that report a server error as a warning); such a diagnostic is then classified."""
        return False


@dataclass(frozen=True)
class CallPlan:
    steps: tuple[tuple[str, tuple[str, ...]], ...]
    """Statements to run in order on one connection, each with the parameters for its `?`s."""
    outputs_in_last_set: bool
    """The output parameters are the last result set's row (a CALL's own, or a SELECT's)."""
