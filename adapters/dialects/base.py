"""What differs between DBMSs, in one place per DBMS: quoting, paging, types, error classes.

`Dialect` holds the portable defaults (ANSI quoting, `LIMIT`, ODBC type codes, SQLSTATE
classes); each DBMS overrides only what it does differently. Dialects are pure: they turn
statement models into SQL text (resource statements through `Rendering`, named queries and
procedure calls here) and driver facts into Bridgehead facts, and do no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from bridgehead.adapters import errors
from bridgehead.adapters.dialects.decoders import Decoder, as_bool, as_bytes, as_utc, as_uuid_text
from bridgehead.adapters.dialects.rendering import Rendering
from bridgehead.adapters.dialects.typenames import (
    CODE_KINDS,
    INTEGER_BITS,
    NAME_KINDS,
    SIZED_CODES,
    base_type_name,
    declared_precision,
)
from bridgehead.adapters.sql import Query, Rendered
from bridgehead.adapters.types import ColumnType, Kind, TableRef, ValueRules

_UNAVAILABLE_SQLSTATES = ("08", "28", "HYT01", "57P01", "57P02", "57P03")
_TIMEOUT_SQLSTATES = ("HYT00", "57014", "HY008", "HY018")


Step = tuple[str, tuple[Any, ...]]
"""One statement and its bound values."""


class Dialect(Rendering):
    """ANSI defaults; subclasses override what their DBMS does differently."""

    name: ClassVar[str] = "ansi"
    dbms_names: ClassVar[tuple[str, ...]] = ()
    """Prefixes of `SQL_DBMS_NAME` (lower case) that select this dialect."""
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
    fallback_kinds: ClassVar[frozenset[Kind]] = frozenset()
    """Kinds whose columns may hold values the kind cannot carry (PostgreSQL's `infinity`
    dates, MariaDB's zero dates, anything in SQLite): such values are served as text."""
    declared_types_sql: ClassVar[str | None] = None
    """Reads a table's columns' declared types (params: schema or None, table), where they say
    more than the driver's type names."""
    qualifier_is_catalog: ClassVar[bool] = False
    """Whether `a.b` in a table name means database a (the ODBC catalog), not schema a."""
    system_qualifiers: ClassVar[frozenset[str]] = frozenset({
        "information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys",
        "system", "sysibm", "syscat", "sysstat", "sysibmadm", "sysproc", "systools", "xdb",
        "ctxsys", "mdsys", "olapsys", "outln", "wmsys", "dbsnmp", "appqossys", "audsys",
    })  # fmt: skip
    """Schemas (or databases) of the DBMS's own catalog, lower-case: left out of listings."""
    value_rules: ClassVar[ValueRules] = ValueRules()
    """What the database stores as sent (U+0000 in text, non-finite floats)."""
    odbc_value_rules: ClassVar[ValueRules | None] = None
    """The same through this DBMS's ODBC driver, where it differs."""
    wide_text_as_utf8: ClassVar[bool] = False
    """Fetch wide text as UTF-8 (SQL_C_CHAR): the driver's UTF-16 form stops at U+0000."""

    # -- types -------------------------------------------------------------------------------

    def knows_type_name(self, db_type: str) -> bool:
        """Whether the type's name is one this dialect maps (not a guess from its ODBC code)."""
        base = base_type_name(db_type)
        return base in self.name_kinds or base in NAME_KINDS

    def fetch_as_text(self, column_type: ColumnType) -> bool:
        """Whether to fetch this type as text: where the driver would lose precision, or where
        text is what the API serves anyway and the driver's own object costs time."""
        return False

    # -- named queries and procedures --------------------------------------------------------

    def render_query(self, query: Query, *, wrap: bool = True) -> Rendered:
        """A named query with this dialect's placeholders and its values bound; with `wrap`,
        wrapped as its described columns call for (`wrap_query`)."""
        sql = _joined(query.pieces, [self.param_mark(t) for t in query.types])
        if wrap and query.columns:
            sql = self.wrap_query(sql, query.columns) or sql
        return Rendered(sql, [self.bind(v) for v in query.values])

    def render_description(self, query: Query) -> tuple[str, ...] | None:
        """The statements that describe a named query's result columns (`describe_query`),
        its parameters standing in as typed NULLs."""
        return self.describe_query(_joined(query.pieces, [self.typed_null(t) for t in query.types]))

    def cursor_statements(self, sql: str, batch_size: int) -> tuple[str, str] | None:
        """(open, fetch) statements that stream `sql` from a server-side cursor inside a
        transaction, the fetch run until it gives no rows; None where the driver's own cursor
        streams the statement."""
        return None

    def render_call(self, procedure: TableRef, params: Sequence[tuple[str, str]]) -> CallPlan:
        """How to call a procedure with (name, direction) params; ODBC's escape by default."""
        marks = ", ".join("?" if d != "out" else "NULL" for _, d in params)
        bound = tuple(n for n, d in params if d != "out")
        outs = any(d != "in" for _, d in params)
        return CallPlan(((f"{{CALL {self.table(procedure)}({marks})}}", bound),), outs)

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

    # -- values ------------------------------------------------------------------------------

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


def _joined(pieces: Sequence[str], marks: Sequence[str]) -> str:
    """A statement's text with `marks[i]` between `pieces[i]` and `pieces[i + 1]`."""
    return pieces[0] + "".join(m + p for m, p in zip(marks, pieces[1:], strict=True))
