"""The SQL dialects: rendered statements, identifier quoting, type kinds, error classes, and
the keyset condition of `agent.api.filters.after`, checked against golden strings, against
sqlglot's parsers, and (for paging) against a real SQLite database. What the adapters' statement
methods send per DBMS (insert, update, delete, streams, calls) is checked in test_statements.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from typing import Any

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from bridgehead.adapters import errors
from bridgehead.adapters.dialects import Dialect, for_dbms
from bridgehead.adapters.dialects.access import AccessDialect
from bridgehead.adapters.dialects.db2 import DB2Dialect
from bridgehead.adapters.dialects.mssql import SQLServerDialect
from bridgehead.adapters.dialects.mysql import MySQLDialect
from bridgehead.adapters.dialects.oracle import OracleDialect
from bridgehead.adapters.dialects.postgresql import PostgreSQLDialect
from bridgehead.adapters.dialects.sqlite import SQLiteDialect
from bridgehead.adapters.sql import (
    And,
    Compare,
    Condition,
    In,
    IsNull,
    Not,
    Op,
    Or,
    OrderBy,
    Rendered,
    Select,
)
from bridgehead.adapters.types import Kind, TableRef
from bridgehead.agent.api.filters import after

# -- the dialects under test -----------------------------------------------------------------

DIALECT_CLASSES: dict[str, type[Dialect]] = {
    "ansi": Dialect,
    "postgresql": PostgreSQLDialect,
    "mysql": MySQLDialect,
    "sqlite": SQLiteDialect,
    "mssql": SQLServerDialect,
    "oracle": OracleDialect,
    "db2": DB2Dialect,
    "access": AccessDialect,
}
NAMES = tuple(DIALECT_CLASSES)

# Identifier quote characters per dialect, written out here rather than read from the classes.
QUOTES: dict[str, tuple[str, str]] = {
    "ansi": ('"', '"'),
    "postgresql": ('"', '"'),
    "mysql": ("`", "`"),
    "sqlite": ('"', '"'),
    "mssql": ("[", "]"),
    "oracle": ('"', '"'),
    "db2": ('"', '"'),
    "access": ("[", "]"),
}


def _sqlglot_dialect(wanted: str, fallback: str) -> str:
    """sqlglot's dialect called `wanted` if this sqlglot has one, else `fallback`."""
    return wanted if wanted in sqlglot.Dialect.classes else fallback


# The sqlglot reader for each dialect's output. sqlglot (30.x) has no DB2 or Access dialect:
# DB2's `FETCH FIRST n ROWS ONLY` is ANSI, so the generic reader ("") stands in; Access's
# brackets, `TOP n` and `IIF` are what T-SQL has too.
SQLGLOT_READ: dict[str, str] = {
    "ansi": "",
    "postgresql": "postgres",
    "mysql": "mysql",
    "sqlite": "sqlite",
    "mssql": "tsql",
    "oracle": "oracle",
    "db2": _sqlglot_dialect("db2", ""),
    "access": _sqlglot_dialect("access", "tsql"),
}


def dialect(name: str) -> Dialect:
    return DIALECT_CLASSES[name]()


def requote(name: str, ansi_sql: str) -> str:
    """`ansi_sql` with its "double-quoted" identifiers in the quotes of dialect `name`."""
    left, right = QUOTES[name]
    return re.sub(r'"([^"]*)"', lambda m: f"{left}{m.group(1)}{right}", ansi_sql)


def where_sql(name: str, condition: Condition) -> tuple[str, list[Any]]:
    """A condition rendered on its own by dialect `name`, with its bound parameters."""
    params: list[Any] = []
    return dialect(name).condition(condition, params), params


# -- 1. golden SQL ---------------------------------------------------------------------------

PLAIN = Select(TableRef("orders", schema="sales"), ("id", "total"))
PAGED = Select(
    TableRef("orders", schema="sales"),
    ("id", "shipped"),
    where=And((Compare("total", Op.GTE, 100), Not(IsNull("customer")))),
    order=(OrderBy("shipped", nullable=True), OrderBy("total", descending=True), OrderBy("id")),
    limit=10,
)
NULLS_FIRST = Select(
    TableRef("events"),
    ("id", "at"),
    where=In("kind", ("a", "b")),
    order=(OrderBy("at", descending=True, nullable=True), OrderBy("id")),
    limit=5,
)
KEY_LOOKUP = Select(TableRef("t"), ("id",), where=Compare("id", Op.EQ, 7), limit=2)
"""A limit without an order, as `agent.api.reads.get_row` issues it."""

STATEMENTS: dict[str, Select] = {"plain": PLAIN, "paged": PAGED, "nulls_first": NULLS_FIRST}
STATEMENT_PARAMS: dict[str, list[Any]] = {"plain": [], "paged": [100], "nulls_first": ["a", "b"]}

GOLDEN: list[tuple[str, str, str]] = [
    ("ansi", "plain", 'SELECT "id", "total" FROM "sales"."orders"'),
    ("postgresql", "plain", 'SELECT "id", "total" FROM "sales"."orders"'),
    ("mysql", "plain", "SELECT `id`, `total` FROM `sales`.`orders`"),
    ("sqlite", "plain", 'SELECT "id", "total" FROM "sales"."orders"'),
    ("mssql", "plain", "SELECT [id], [total] FROM [sales].[orders]"),
    ("oracle", "plain", 'SELECT "id", "total" FROM "sales"."orders"'),
    ("db2", "plain", 'SELECT "id", "total" FROM "sales"."orders"'),
    ("access", "plain", "SELECT [id], [total] FROM [sales].[orders]"),
    (
        "ansi",
        "paged",
        'SELECT "id", "shipped" FROM "sales"."orders"'
        ' WHERE ("total" >= ? AND "customer" IS NOT NULL)'
        ' ORDER BY CASE WHEN "shipped" IS NULL THEN 1 ELSE 0 END ASC, "shipped" ASC,'
        ' "total" DESC, "id" ASC LIMIT 10',
    ),
    (
        "postgresql",
        "paged",
        'SELECT "id", "shipped" FROM "sales"."orders"'
        ' WHERE ("total" >= ? AND "customer" IS NOT NULL)'
        ' ORDER BY CASE WHEN "shipped" IS NULL THEN 1 ELSE 0 END ASC, "shipped" ASC,'
        ' "total" DESC, "id" ASC LIMIT 10',
    ),
    (
        "mysql",
        "paged",
        "SELECT `id`, `shipped` FROM `sales`.`orders`"
        " WHERE (`total` >= ? AND `customer` IS NOT NULL)"
        " ORDER BY CASE WHEN `shipped` IS NULL THEN 1 ELSE 0 END ASC, `shipped` ASC,"
        " `total` DESC, `id` ASC LIMIT 10",
    ),
    (
        "sqlite",
        "paged",
        'SELECT "id", "shipped" FROM "sales"."orders"'
        ' WHERE ("total" >= ? AND "customer" IS NOT NULL)'
        ' ORDER BY CASE WHEN "shipped" IS NULL THEN 1 ELSE 0 END ASC, "shipped" ASC,'
        ' "total" DESC, "id" ASC LIMIT 10',
    ),
    (
        "mssql",
        "paged",
        "SELECT [id], [shipped] FROM [sales].[orders]"
        " WHERE ([total] >= ? AND [customer] IS NOT NULL)"
        " ORDER BY CASE WHEN [shipped] IS NULL THEN 1 ELSE 0 END ASC, [shipped] ASC,"
        " [total] DESC, [id] ASC OFFSET 0 ROWS FETCH NEXT 10 ROWS ONLY",
    ),
    (
        "oracle",
        "paged",
        'SELECT "id", "shipped" FROM "sales"."orders"'
        ' WHERE ("total" >= ? AND "customer" IS NOT NULL)'
        ' ORDER BY CASE WHEN "shipped" IS NULL THEN 1 ELSE 0 END ASC, "shipped" ASC,'
        ' "total" DESC, "id" ASC FETCH FIRST 10 ROWS ONLY',
    ),
    (
        "db2",
        "paged",
        'SELECT "id", "shipped" FROM "sales"."orders"'
        ' WHERE ("total" >= ? AND "customer" IS NOT NULL)'
        ' ORDER BY CASE WHEN "shipped" IS NULL THEN 1 ELSE 0 END ASC, "shipped" ASC,'
        ' "total" DESC, "id" ASC FETCH FIRST 10 ROWS ONLY',
    ),
    (
        "access",
        "paged",
        "SELECT TOP 10 [id], [shipped] FROM [sales].[orders]"
        " WHERE ([total] >= ? AND [customer] IS NOT NULL)"
        " ORDER BY IIF([shipped] IS NULL, 1, 0) ASC, [shipped] ASC, [total] DESC, [id] ASC",
    ),
    (
        "ansi",
        "nulls_first",
        'SELECT "id", "at" FROM "events" WHERE "kind" IN (?, ?)'
        ' ORDER BY CASE WHEN "at" IS NULL THEN 1 ELSE 0 END DESC, "at" DESC, "id" ASC LIMIT 5',
    ),
    (
        "postgresql",
        "nulls_first",
        'SELECT "id", "at" FROM "events" WHERE "kind" IN (?, ?)'
        ' ORDER BY CASE WHEN "at" IS NULL THEN 1 ELSE 0 END DESC, "at" DESC, "id" ASC LIMIT 5',
    ),
    (
        "mysql",
        "nulls_first",
        "SELECT `id`, `at` FROM `events` WHERE `kind` IN (?, ?)"
        " ORDER BY CASE WHEN `at` IS NULL THEN 1 ELSE 0 END DESC, `at` DESC, `id` ASC LIMIT 5",
    ),
    (
        "sqlite",
        "nulls_first",
        'SELECT "id", "at" FROM "events" WHERE "kind" IN (?, ?)'
        ' ORDER BY CASE WHEN "at" IS NULL THEN 1 ELSE 0 END DESC, "at" DESC, "id" ASC LIMIT 5',
    ),
    (
        "mssql",
        "nulls_first",
        "SELECT [id], [at] FROM [events] WHERE [kind] IN (?, ?)"
        " ORDER BY CASE WHEN [at] IS NULL THEN 1 ELSE 0 END DESC, [at] DESC, [id] ASC"
        " OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY",
    ),
    (
        "oracle",
        "nulls_first",
        'SELECT "id", "at" FROM "events" WHERE "kind" IN (?, ?)'
        ' ORDER BY CASE WHEN "at" IS NULL THEN 1 ELSE 0 END DESC, "at" DESC, "id" ASC'
        " FETCH FIRST 5 ROWS ONLY",
    ),
    (
        "db2",
        "nulls_first",
        'SELECT "id", "at" FROM "events" WHERE "kind" IN (?, ?)'
        ' ORDER BY CASE WHEN "at" IS NULL THEN 1 ELSE 0 END DESC, "at" DESC, "id" ASC'
        " FETCH FIRST 5 ROWS ONLY",
    ),
    (
        "access",
        "nulls_first",
        "SELECT TOP 5 [id], [at] FROM [events] WHERE [kind] IN (?, ?)"
        " ORDER BY IIF([at] IS NULL, 1, 0) DESC, [at] DESC, [id] ASC",
    ),
]


@pytest.mark.parametrize(
    ("name", "statement", "expected"),
    [pytest.param(n, s, sql, id=f"{n}-{s}") for n, s, sql in GOLDEN],
)
def test_golden_select(name: str, statement: str, expected: str) -> None:
    """Each dialect renders a whole statement (schema-qualified table, WHERE, NULL-ranked and
    descending ORDER BY, its own row limit) exactly as written, with the values bound."""
    rendered = dialect(name).render_select(STATEMENTS[statement])
    assert rendered.sql == expected
    assert rendered.params == STATEMENT_PARAMS[statement]


def test_golden_covers_every_dialect_and_statement() -> None:
    """The golden table has one string per dialect per statement, so none is forgotten."""
    assert sorted((n, s) for n, s, _ in GOLDEN) == sorted((n, s) for n in NAMES for s in STATEMENTS)


LIMITS: dict[str, str] = {
    "ansi": 'SELECT "id" FROM "t" LIMIT 3',
    "postgresql": 'SELECT "id" FROM "t" LIMIT 3',
    "mysql": "SELECT `id` FROM `t` LIMIT 3",
    "sqlite": 'SELECT "id" FROM "t" LIMIT 3',
    "mssql": "SELECT [id] FROM [t] ORDER BY [id] ASC OFFSET 0 ROWS FETCH NEXT 3 ROWS ONLY",
    "oracle": 'SELECT "id" FROM "t" FETCH FIRST 3 ROWS ONLY',
    "db2": 'SELECT "id" FROM "t" FETCH FIRST 3 ROWS ONLY',
    "access": "SELECT TOP 3 [id] FROM [t]",
}


LIMITED = Select(TableRef("t"), ("id",), limit=3)


@pytest.mark.parametrize("name", NAMES)
def test_row_limit_clause(name: str) -> None:
    """The row limit is LIMIT, TOP, FETCH FIRST or OFFSET..FETCH as the DBMS spells it (SQL
    Server's OFFSET only after an ORDER BY, so that case is ordered)."""
    order = (OrderBy("id"),) if name == "mssql" else ()
    select = Select(LIMITED.table, LIMITED.columns, order=order, limit=LIMITED.limit)
    assert dialect(name).render_select(select).sql == LIMITS[name]


def test_sqlserver_limit_without_order_is_valid_tsql() -> None:
    """A limited Select without an order (the single-row lookup) renders T-SQL that SQL Server
    accepts: OFFSET..FETCH is only allowed after an ORDER BY clause."""
    sql = SQLServerDialect().render_select(KEY_LOOKUP).sql
    assert "OFFSET" not in sql or " ORDER BY " in sql


COMPARISONS = [
    (Op.EQ, "="),
    (Op.NEQ, "<>"),
    (Op.GT, ">"),
    (Op.GTE, ">="),
    (Op.LT, "<"),
    (Op.LTE, "<="),
]

# (test id, condition, its rendering with ANSI quotes, the parameters in binding order)
CONDITION_CASES: list[tuple[str, Condition, str, list[Any]]] = [
    *((op.name, Compare("a", op, 1), f'"a" {symbol} ?', [1]) for op, symbol in COMPARISONS),
    ("LIKE", Compare("a", Op.LIKE, "x!%%"), "\"a\" LIKE ? ESCAPE '!'", ["x!%%"]),
    ("in", In("a", (3, 1, 2)), '"a" IN (?, ?, ?)', [3, 1, 2]),
    ("in-one", In("a", ("x",)), '"a" IN (?)', ["x"]),
    ("is-null", IsNull("a"), '"a" IS NULL', []),
    ("not-is-null", Not(IsNull("a")), '"a" IS NOT NULL', []),
    ("not-eq", Not(Compare("a", Op.EQ, 1)), 'NOT ("a" = ?)', [1]),
    ("not-in", Not(In("a", (1, 2))), 'NOT ("a" IN (?, ?))', [1, 2]),
    (
        "not-or",
        Not(Or((IsNull("a"), Compare("a", Op.LT, 0)))),
        'NOT (("a" IS NULL OR "a" < ?))',
        [0],
    ),
    (
        "and-of-or",
        And(
            (
                Compare("a", Op.GT, 1),
                Or((IsNull("b"), Compare("b", Op.LIKE, "x%"))),
                In("c", (2, 3)),
            )
        ),
        '("a" > ? AND ("b" IS NULL OR "b" LIKE ? ESCAPE \'!\') AND "c" IN (?, ?))',
        [1, "x%", 2, 3],
    ),
    (
        "or-of-and",
        Or((And((Compare("a", Op.EQ, 1), Compare("b", Op.NEQ, "z"))), Not(IsNull("c")))),
        '(("a" = ? AND "b" <> ?) OR "c" IS NOT NULL)',
        [1, "z"],
    ),
]
CONDITIONS = [pytest.param(*case, id=case_id) for case_id, *case in CONDITION_CASES]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("condition", "ansi_where", "params"), CONDITIONS)
def test_where_clause(name: str, condition: Condition, ansi_where: str, params: list[Any]) -> None:
    """Every comparison operator, IN, IS [NOT] NULL, NOT and nested AND/OR render in every
    dialect as expected, with one `?` per value and the values in placeholder order."""
    select = Select(TableRef("t"), ("id",), where=condition)
    rendered = dialect(name).render_select(select)
    assert rendered.sql == requote(name, f'SELECT "id" FROM "t" WHERE {ansi_where}')
    assert rendered.params == params


# -- 2. identifier quoting -------------------------------------------------------------------

# identifier: (in "double quotes", in `backticks`, in [brackets])
QUOTED: dict[str, tuple[str, str, str]] = {
    "first name": ('"first name"', "`first name`", "[first name]"),
    "MixedCase": ('"MixedCase"', "`MixedCase`", "[MixedCase]"),
    "select": ('"select"', "`select`", "[select]"),
    "order": ('"order"', "`order`", "[order]"),
    'a"b': ('"a""b"', '`a"b`', '[a"b]'),
    'a""b': ('"a""""b"', '`a""b`', '[a""b]'),
    "a`b": ('"a`b"', "`a``b`", "[a`b]"),
    "a]b": ('"a]b"', "`a]b`", "[a]]b]"),
    "a[b": ('"a[b"', "`a[b`", "[a[b]"),
}
AWKWARD = tuple(QUOTED)
STYLE = {'"': 0, "`": 1, "[": 2}
QUOTING = [
    pytest.param(name, identifier, quoted[STYLE[QUOTES[name][0]]], id=f"{name}-{identifier}")
    for name in NAMES
    for identifier, quoted in QUOTED.items()
]


@pytest.mark.parametrize(("name", "identifier", "quoted"), QUOTING)
def test_quote_awkward_identifier(name: str, identifier: str, quoted: str) -> None:
    """Identifiers with spaces, mixed case, reserved words or the dialect's own closing quote
    are always quoted, the closing quote doubled and nothing else touched."""
    assert dialect(name).quote(identifier) == quoted


@pytest.mark.parametrize(("name", "identifier", "quoted"), QUOTING)
def test_quoted_identifier_reads_back_in_sqlglot(name: str, identifier: str, quoted: str) -> None:
    """sqlglot, reading the dialect's SQL, sees the quoted column as exactly the original name."""
    select = Select(TableRef("t"), (identifier,))
    tree = sqlglot.parse_one(dialect(name).render_select(select).sql, read=SQLGLOT_READ[name])
    assert [column.name for column in tree.expressions] == [identifier]


@pytest.mark.parametrize("name", NAMES)
def test_schema_qualified_awkward_table(name: str) -> None:
    """A `schema.table` reference quotes schema and table separately."""
    expected = {
        '"': '"my schema"."Order"',
        "`": "`my schema`.`Order`",
        "[": "[my schema].[Order]",
    }[QUOTES[name][0]]
    assert dialect(name).table(TableRef("Order", schema="my schema")) == expected


# -- 3. every generated statement parses in sqlglot ------------------------------------------

KEYSET_ORDER = (
    OrderBy("b", descending=True),
    OrderBy("a", nullable=True),
    OrderBy("id"),
)
PARSED_STATEMENTS: dict[str, Select] = {
    **STATEMENTS,
    "key-lookup": KEY_LOOKUP,
    "all-conditions": Select(
        TableRef("t", schema="s"),
        ("id", "a"),
        where=And(tuple(condition for _, condition, _, _ in CONDITION_CASES)),
        order=(OrderBy("a", descending=True, nullable=True), OrderBy("id")),
        limit=50,
    ),
    "keyset": Select(
        TableRef("t"),
        ("id", "a", "b"),
        where=after(KEYSET_ORDER, ["m", 3, 7]),
        order=KEYSET_ORDER,
        limit=20,
    ),
    "awkward-names": Select(
        TableRef("Order Lines", schema="select"),
        AWKWARD,
        where=Compare("a]b", Op.EQ, 1),
        order=(OrderBy('a"b', nullable=True),),
        limit=1,
    ),
}


@pytest.mark.parametrize(
    ("name", "statement"),
    [pytest.param(n, s, id=f"{n}-{s}") for n in NAMES for s, select in PARSED_STATEMENTS.items()],
)
def test_statement_parses_in_sqlglot(name: str, statement: str) -> None:
    """sqlglot parses each dialect's SQL (DB2 and Access through a stand-in reader) as one
    SELECT of the right table and columns, with one placeholder per bound value."""
    select = PARSED_STATEMENTS[statement]
    rendered: Rendered = dialect(name).render_select(select)
    tree = sqlglot.parse_one(rendered.sql, read=SQLGLOT_READ[name])
    assert isinstance(tree, exp.Select)
    table = tree.find(exp.Table)
    assert table is not None
    assert (table.name, table.db) == (select.table.name, select.table.schema or "")
    assert [column.name for column in tree.expressions] == list(select.columns)
    assert len(list(tree.find_all(exp.Placeholder))) == len(rendered.params)


# -- 4. type names to kinds ------------------------------------------------------------------

# (dialect, type name as reported, ODBC type code, precision, scale, expected kind)
COLUMN_TYPES: list[tuple[str, str, int | None, int | None, int | None, Kind]] = [
    ("postgresql", "timestamptz", 93, 35, 6, Kind.TIMESTAMPTZ),
    ("postgresql", "timestamp(3) with time zone", None, None, None, Kind.TIMESTAMPTZ),
    ("postgresql", "timestamp without time zone", 93, None, None, Kind.TIMESTAMP),
    ("postgresql", "numeric(12,2)", None, None, None, Kind.DECIMAL),
    ("postgresql", "int4", 4, 10, 0, Kind.INTEGER),
    ("postgresql", "bigserial", -5, 19, 0, Kind.INTEGER),
    ("postgresql", "oid", None, None, None, Kind.INTEGER),
    ("postgresql", "float8", 8, None, None, Kind.FLOAT),
    ("postgresql", "bool", -7, None, None, Kind.BOOLEAN),
    ("postgresql", "character varying(20)", 12, 20, None, Kind.STRING),
    ("postgresql", "jsonb", -1, None, None, Kind.UNKNOWN),  # no order of its own: as text
    ("postgresql", "timetz", 92, None, None, Kind.STRING),
    ("postgresql", "interval", None, None, None, Kind.STRING),
    ("postgresql", "date", 91, None, None, Kind.DATE),
    ("postgresql", "time", 92, None, None, Kind.TIME),
    ("postgresql", "uuid", -11, None, None, Kind.UUID),
    ("postgresql", "bytea", -3, None, None, Kind.BINARY),
    ("mysql", "TIMESTAMP", 93, 19, 0, Kind.TIMESTAMPTZ),
    ("mysql", "DATETIME", 93, 19, 0, Kind.TIMESTAMP),
    ("mysql", "int(10) unsigned", 4, 10, 0, Kind.INTEGER),
    ("mysql", "bigint unsigned", -5, 20, 0, Kind.INTEGER),
    ("mysql", "tinyint(1)", -6, 3, 0, Kind.BOOLEAN),  # BOOLEAN is tinyint(1)
    ("mysql", "bit(1)", -7, 1, None, Kind.BOOLEAN),
    ("mysql", "year", 5, 4, 0, Kind.INTEGER),
    ("mysql", "enum('a','b')", 1, 1, None, Kind.UNKNOWN),  # sorts by position, compares as text
    ("mysql", "set", 1, None, None, Kind.UNKNOWN),
    ("mysql", "decimal(10,2) unsigned", 3, 10, 2, Kind.DECIMAL),
    ("mysql", "double unsigned", 8, None, None, Kind.FLOAT),
    ("mysql", "mediumtext", -1, None, None, Kind.STRING),
    ("mysql", "longblob", -4, None, None, Kind.BINARY),
    ("mssql", "datetimeoffset", -155, 34, 7, Kind.TIMESTAMPTZ),
    ("mssql", "datetime2", 93, 27, 7, Kind.TIMESTAMP),
    ("mssql", "smalldatetime", 93, 16, 0, Kind.TIMESTAMP),
    ("mssql", "datetime", 93, 23, 3, Kind.TIMESTAMP),
    ("mssql", "uniqueidentifier", -11, 36, None, Kind.UUID),
    ("mssql", "bit", -7, 1, None, Kind.BOOLEAN),
    ("mssql", "money", 3, 19, 4, Kind.DECIMAL),
    ("mssql", "smallmoney", 3, 10, 4, Kind.DECIMAL),
    ("mssql", "timestamp", -2, 8, None, Kind.BINARY),
    ("mssql", "rowversion", -2, 8, None, Kind.BINARY),
    ("mssql", "int identity", 4, 10, 0, Kind.INTEGER),
    ("mssql", "numeric identity", 2, 18, 0, Kind.DECIMAL),
    ("mssql", "nvarchar", -9, 50, None, Kind.STRING),
    ("mssql", "ntext", -10, None, None, Kind.STRING),
    ("mssql", "image", -4, None, None, Kind.BINARY),
    ("mssql", "sql_variant", -150, None, None, Kind.UNKNOWN),
    ("oracle", "NUMBER", 3, 10, 0, Kind.INTEGER),
    ("oracle", "NUMBER", 3, 38, 0, Kind.INTEGER),
    ("oracle", "NUMBER", 3, 12, 2, Kind.DECIMAL),
    ("oracle", "NUMBER", 8, None, None, Kind.DECIMAL),
    ("oracle", "DATE", 93, 19, 0, Kind.TIMESTAMP),
    ("oracle", "TIMESTAMP(6)", 93, 26, 6, Kind.TIMESTAMP),
    ("oracle", "TIMESTAMP(6) WITH TIME ZONE", -101, None, None, Kind.TIMESTAMPTZ),
    ("oracle", "TIMESTAMP(6) WITH LOCAL TIME ZONE", 93, None, None, Kind.TIMESTAMPTZ),
    ("oracle", "VARCHAR2", 12, 100, None, Kind.STRING),
    ("oracle", "NVARCHAR2", -9, 100, None, Kind.STRING),
    ("oracle", "LONG", -1, None, None, Kind.STRING),
    ("oracle", "CLOB", -1, None, None, Kind.STRING),
    ("oracle", "BINARY_DOUBLE", 8, None, None, Kind.FLOAT),
    ("oracle", "RAW", -3, 16, None, Kind.BINARY),
    ("oracle", "LONG RAW", -4, None, None, Kind.BINARY),
    ("oracle", "BLOB", -4, None, None, Kind.BINARY),
    ("db2", "GRAPHIC", -95, 10, None, Kind.STRING),
    ("db2", "VARGRAPHIC", -96, 10, None, Kind.STRING),
    ("db2", "DBCLOB", -350, None, None, Kind.STRING),
    ("db2", "LONG VARCHAR", -1, None, None, Kind.STRING),
    ("db2", "DECFLOAT", -360, 34, None, Kind.DECIMAL),
    ("db2", "CHAR () FOR BIT DATA", -2, 16, None, Kind.BINARY),
    ("db2", "VARCHAR () FOR BIT DATA", -3, 16, None, Kind.BINARY),
    ("db2", "INTEGER", 4, 10, 0, Kind.INTEGER),
    ("db2", "TIMESTAMP", 93, 26, 6, Kind.TIMESTAMP),
    ("db2", "XML", -370, None, None, Kind.STRING),
    ("access", "COUNTER", 4, 10, 0, Kind.INTEGER),
    ("access", "LONG", 4, 10, 0, Kind.INTEGER),
    ("access", "SHORT", 5, 5, 0, Kind.INTEGER),
    ("access", "BYTE", -6, 3, 0, Kind.INTEGER),
    ("access", "CURRENCY", 2, 19, 4, Kind.DECIMAL),
    ("access", "SINGLE", 7, None, None, Kind.FLOAT),
    ("access", "DOUBLE", 8, None, None, Kind.FLOAT),
    ("access", "YESNO", -7, 1, None, Kind.BOOLEAN),
    ("access", "BIT", -7, 1, None, Kind.BOOLEAN),
    ("access", "MEMO", -1, None, None, Kind.STRING),
    ("access", "LONGCHAR", -1, None, None, Kind.STRING),
    ("access", "DATETIME", 93, 19, 0, Kind.TIMESTAMP),
    ("access", "GUID", -11, 36, None, Kind.UUID),
    ("access", "LONGBINARY", -4, None, None, Kind.BINARY),
    ("sqlite", "INTEGER", None, None, None, Kind.INTEGER),
    ("sqlite", "BIGINT UNSIGNED", None, None, None, Kind.INTEGER),
    ("sqlite", "UNSIGNED BIG INT", None, None, None, Kind.INTEGER),
    ("sqlite", "FLOATING POINT", None, None, None, Kind.INTEGER),  # "INT" wins in SQLite
    ("sqlite", "VARCHAR(20)", None, None, None, Kind.STRING),
    ("sqlite", "VARYING CHARACTER(255)", None, None, None, Kind.STRING),
    ("sqlite", "NATIVE CHARACTER(70)", None, None, None, Kind.STRING),
    ("sqlite", "CLOB", None, None, None, Kind.STRING),
    ("sqlite", "TIMESTAMPTZ", None, None, None, Kind.STRING),
    ("sqlite", "BLOB", None, None, None, Kind.BINARY),
    ("sqlite", "REAL", None, None, None, Kind.FLOAT),
    ("sqlite", "DOUBLE PRECISION", None, None, None, Kind.FLOAT),
    ("sqlite", "DECIMAL(12,2)", None, None, None, Kind.DECIMAL),
    ("sqlite", "NUMERIC", None, None, None, Kind.DECIMAL),
    ("sqlite", "BOOLEAN", None, None, None, Kind.BOOLEAN),
    ("sqlite", "DATE", None, None, None, Kind.DATE),
    ("sqlite", "DATETIME", None, None, None, Kind.TIMESTAMP),
    ("sqlite", "", None, None, None, Kind.UNKNOWN),
    ("sqlite", "WIDGET", None, None, None, Kind.UNKNOWN),
    ("sqlite", "WIDGET", 12, None, None, Kind.STRING),  # the ODBC code is the last resort
    ("ansi", "widget", 4, None, None, Kind.INTEGER),
    ("ansi", "widget", 2, 9, 3, Kind.DECIMAL),
    ("ansi", "widget", 7, None, None, Kind.FLOAT),
    ("ansi", "widget", -7, None, None, Kind.BOOLEAN),
    ("ansi", "widget", -9, None, None, Kind.STRING),
    ("ansi", "widget", 91, None, None, Kind.DATE),
    ("ansi", "widget", 92, None, None, Kind.TIME),
    ("ansi", "widget", 93, None, None, Kind.TIMESTAMP),
    ("ansi", "widget", -11, None, None, Kind.UUID),
    ("ansi", "widget", -4, None, None, Kind.BINARY),
    ("ansi", "widget", 9999, None, None, Kind.UNKNOWN),
]


@pytest.mark.parametrize(
    ("name", "db_type", "sql_type", "precision", "scale", "kind"), COLUMN_TYPES
)
def test_column_type_kind(
    *,
    name: str,
    db_type: str,
    sql_type: int | None,
    precision: int | None,
    scale: int | None,
    kind: Kind,
) -> None:
    """Each dialect maps its DBMS's type names (then SQLite affinity, then the ODBC type code)
    to the right kind, and keeps the name as the database reported it."""
    found = dialect(name).column_type(db_type, sql_type=sql_type, precision=precision, scale=scale)
    assert found.kind is kind
    assert found.db_type == db_type


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("db_type", ["widget", "GEOMETRY", ""])
def test_unknown_type_without_code_is_unknown(name: str, db_type: str) -> None:
    """A type name no dialect knows, with no ODBC type code, is UNKNOWN rather than a guess."""
    assert dialect(name).column_type(db_type).kind is Kind.UNKNOWN


# (dialect, type name, precision and scale given by the driver, precision and scale expected)
DECIMALS = [
    ("postgresql", "numeric(12,2)", None, None, 12, 2),
    ("postgresql", "NUMERIC(12, 2)", None, None, 12, 2),
    ("postgresql", "numeric(10)", None, None, 10, 0),
    ("postgresql", "numeric", None, None, None, None),
    ("postgresql", "numeric", 12, 2, 12, 2),
    ("sqlite", "DECIMAL(12,2)", None, None, 12, 2),
    ("oracle", "NUMBER", 12, 2, 12, 2),
    ("oracle", "NUMBER", None, None, None, None),
    ("mssql", "money", 19, 4, 19, 4),
    ("access", "CURRENCY", 19, 4, 19, 4),
    ("db2", "DECIMAL", 31, 5, 31, 5),
]


@pytest.mark.parametrize(
    ("name", "db_type", "precision", "scale", "want_precision", "want_scale"), DECIMALS
)
def test_decimal_precision_and_scale(
    *,
    name: str,
    db_type: str,
    precision: int | None,
    scale: int | None,
    want_precision: int | None,
    want_scale: int | None,
) -> None:
    """DECIMAL columns keep the driver's precision and scale, or read them from the declared
    type `NUMERIC(p, s)` when the driver gives none."""
    found = dialect(name).column_type(db_type, precision=precision, scale=scale)
    assert found.kind is Kind.DECIMAL
    assert (found.precision, found.scale) == (want_precision, want_scale)


# -- 5. error classes ------------------------------------------------------------------------

SQLSTATES = [
    ("23505", errors.ConstraintViolated),
    ("23000", errors.ConstraintViolated),
    ("08S01", errors.SourceUnavailable),
    ("08001", errors.SourceUnavailable),
    ("28000", errors.SourceUnavailable),
    ("57P01", errors.SourceUnavailable),
    ("HYT01", errors.SourceUnavailable),
    ("57014", errors.QueryTimedOut),
    ("HYT00", errors.QueryTimedOut),
    ("HY008", errors.QueryTimedOut),
    ("22003", errors.ValueRejected),
    ("22007", errors.ValueRejected),
    ("42P01", errors.SourceError),
    ("42S02", errors.SourceError),
    ("HY000", errors.SourceError),
    ("", errors.SourceError),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("sqlstate", "expected"), SQLSTATES)
def test_classify_sqlstate(name: str, sqlstate: str, expected: type[errors.SourceError]) -> None:
    """The SQLSTATE class decides the error: 23 constraint, 08/28 unavailable, the timeout
    states, 22 rejected value, anything else the SourceError base."""
    assert dialect(name).classify(sqlstate, "some driver message") is expected


MARKERS = [
    ("mysql", "[MySQL][ODBC 8.0(w) Driver]MySQL server has gone away"),
    ("mysql", "Lost connection to MySQL server during query"),
    ("mysql", "Can't connect to MySQL server on 'db' (111)"),
    ("postgresql", "server closed the connection unexpectedly"),
    ("postgresql", "FATAL: terminating connection due to administrator command"),
    ("mssql", "[Microsoft][ODBC Driver 18 for SQL Server]Communication link failure"),
    ("mssql", "TCP Provider: An existing connection was forcibly closed"),
    ("oracle", "ORA-03113: end-of-file on communication channel"),
    ("oracle", "ORA-12541: TNS:no listener"),
    ("db2", "SQL30081N  A communication error has been detected"),
]


@pytest.mark.parametrize(("name", "message"), MARKERS)
def test_classify_lost_connection_message(name: str, message: str) -> None:
    """A dialect's lost-connection message means SourceUnavailable whatever the SQLSTATE
    (drivers often say HY000), matched without regard to case."""
    classify = dialect(name).classify
    assert classify("HY000", message) is errors.SourceUnavailable
    assert classify("HY000", message.upper()) is errors.SourceUnavailable


@pytest.mark.parametrize("message", [message for _, message in MARKERS])
def test_lost_connection_markers_are_per_dialect(message: str) -> None:
    """Another DBMS's lost-connection wording does not count: the ANSI dialect leaves it a
    plain SourceError."""
    assert Dialect().classify("HY000", message) is errors.SourceError


# -- 6. choosing a dialect -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dbms_name", "expected"),
    [
        ("PostgreSQL", PostgreSQLDialect),
        ("MariaDB", MySQLDialect),
        ("MySQL", MySQLDialect),
        ("SQLite", SQLiteDialect),
        ("Microsoft SQL Server", SQLServerDialect),
        ("Oracle", OracleDialect),
        ("DB2/LINUXX8664", DB2Dialect),
        ("DB2/NT64", DB2Dialect),
        ("ACCESS", AccessDialect),
        ("Informix", Dialect),
        ("", Dialect),
    ],
)
def test_for_dbms(dbms_name: str, expected: type[Dialect]) -> None:
    """`for_dbms` picks the dialect from the driver's SQL_DBMS_NAME, case-insensitively by
    prefix; an unknown DBMS gets the ANSI base `Dialect`."""
    assert type(for_dbms(dbms_name)) is expected


# -- 7. the keyset condition -----------------------------------------------------------------

ID = OrderBy("id")
A_NULLABLE = OrderBy("a", nullable=True)
A_NULLABLE_DESC = OrderBy("a", descending=True, nullable=True)

# (order, values of the last row seen, rendered condition, parameters)
KEYSETS = [
    pytest.param((ID,), [5], '"id" > ?', [5], id="key"),
    pytest.param((OrderBy("id", descending=True),), [5], '"id" < ?', [5], id="key-desc"),
    pytest.param(
        (A_NULLABLE, ID),
        [3, 7],
        '(("a" > ? OR "a" IS NULL) OR ("a" = ? AND "id" > ?))',
        [3, 3, 7],
        id="nullable-value",
    ),
    pytest.param(
        (A_NULLABLE, ID), [None, 7], '("a" IS NULL AND "id" > ?)', [7], id="nullable-null"
    ),
    pytest.param(
        (A_NULLABLE_DESC, ID),
        [None, 7],
        '("a" IS NOT NULL OR ("a" IS NULL AND "id" > ?))',
        [7],
        id="nullable-desc-null",
    ),
    pytest.param(
        (A_NULLABLE_DESC, ID),
        [3, 7],
        '("a" < ? OR ("a" = ? AND "id" > ?))',
        [3, 3, 7],
        id="nullable-desc-value",
    ),
    pytest.param(
        KEYSET_ORDER,
        ["m", None, 7],
        '("b" < ? OR ("b" = ? AND ("a" IS NULL AND "id" > ?)))',
        ["m", "m", 7],
        id="three-columns",
    ),
    pytest.param(
        (OrderBy("b"), A_NULLABLE), ["m", None], '"b" > ?', ["m"], id="trailing-null-last"
    ),
]


@pytest.mark.parametrize("name", ["postgresql", "mssql"])
@pytest.mark.parametrize(("order", "values", "ansi_sql", "params"), KEYSETS)
def test_keyset_condition(
    name: str,
    order: Sequence[OrderBy],
    values: list[Any],
    ansi_sql: str,
    params: list[Any],
) -> None:
    """`after` builds "rows strictly after this one" for the order, with NULL the largest
    value: after a NULL nothing but the next columns decide (ascending), or every non-NULL
    row follows (descending)."""
    condition = after(order, values)
    assert condition is not None
    assert where_sql(name, condition) == (requote(name, ansi_sql), params)


@pytest.mark.parametrize(
    ("order", "values"),
    [
        ((A_NULLABLE,), [None]),
        ((A_NULLABLE, OrderBy("b", nullable=True)), [None, None]),
    ],
)
def test_keyset_after_last_row_is_none(order: Sequence[OrderBy], values: list[Any]) -> None:
    """When the last row seen is NULL in every ascending column nothing can follow it, and
    `after` says so with None instead of an always-false condition."""
    assert after(order, values) is None


COLUMNS = ("id", "a", "b")
TABLE = TableRef("t")


@st.composite
def paging_cases(draw: st.DrawFn) -> tuple[list[tuple[Any, Any]], tuple[OrderBy, ...], int]:
    """Rows (a, b) with NULLs and duplicates, an order over some of a/b then id, a page size."""
    b_nullable = draw(st.booleans())
    b_values: st.SearchStrategy[str | None] = st.sampled_from(["", "a", "ab", "b"])
    if b_nullable:
        b_values = st.none() | b_values
    rows = draw(st.lists(st.tuples(st.none() | st.integers(-2, 2), b_values), max_size=25))
    columns = draw(st.permutations(["a", "b"]))[: draw(st.integers(0, 2))]
    nullable = {"a": True, "b": b_nullable}
    order = tuple(OrderBy(c, draw(st.booleans()), nullable[c]) for c in columns)
    return rows, (*order, OrderBy("id")), draw(st.integers(1, 6))


def _fetch(db: sqlite3.Connection, select: Select) -> list[tuple[Any, ...]]:
    rendered = SQLiteDialect().render_select(select)
    return db.execute(rendered.sql, rendered.params).fetchall()


def _model_order(rows: list[tuple[Any, ...]], order: Sequence[OrderBy]) -> list[int]:
    """The ids in `order` as documented (NULL is the largest value), by stable sorts on each
    key from the last to the first."""
    ranked = list(rows)
    for spec in reversed(order):
        i = COLUMNS.index(spec.column)

        def null_last(row: tuple[Any, ...], i: int = i) -> tuple[bool, Any]:
            return (row[i] is None, 0 if row[i] is None else row[i])

        ranked.sort(key=null_last, reverse=spec.descending)
    return [row[0] for row in ranked]


@settings(max_examples=60, deadline=None, database=None)
@given(paging_cases())
def test_keyset_pages_visit_every_row_once(
    case: tuple[list[tuple[Any, Any]], tuple[OrderBy, ...], int],
) -> None:
    """Walking a SQLite table page by page with `after(order, last row)` as the WHERE yields
    exactly the rows of one query in the same order: none repeated, none skipped, and that
    order is the documented one (NULL largest)."""
    rows, order, page = case
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute('CREATE TABLE "t" ("id" INTEGER PRIMARY KEY, "a" INTEGER, "b" TEXT)')
        db.executemany('INSERT INTO "t" ("a", "b") VALUES (?, ?)', rows)
        everything = _fetch(db, Select(TABLE, COLUMNS, order=order))
        expected = [row[0] for row in everything]
        assert sorted(expected) == list(range(1, len(rows) + 1))
        assert expected == _model_order(everything, order)

        seen: list[int] = []
        last: list[Any] | None = None
        for _ in range(len(rows) + 2):
            where = None if last is None else after(order, last)
            if last is not None and where is None:
                break
            found = _fetch(db, Select(TABLE, COLUMNS, where=where, order=order, limit=page))
            seen += [row[0] for row in found]
            if len(found) < page:
                break
            last = [found[-1][COLUMNS.index(spec.column)] for spec in order]
        else:
            pytest.fail("paging did not come to an end")
    assert seen == expected


@pytest.mark.parametrize("name", NAMES)
def test_order_by_a_column_fetched_as_text_sorts_the_column(name: str) -> None:
    """A column cast to text for the answer is ordered by the column itself, qualified by its
    table: a bare name in ORDER BY would bind to the text output column of that name."""
    dialect = DIALECT_CLASSES[name]()
    statement = Select(
        TableRef("invoice", "shop"),
        ("id", "total"),
        order=(OrderBy("total", descending=True),),
        limit=5,
        as_text=frozenset({"total"}),
    )
    sql = dialect.render_select(statement).sql
    column = f"{dialect.table(TableRef('invoice', 'shop'))}.{dialect.quote('total')}"
    assert f"ORDER BY {column} DESC" in sql
    assert f"{dialect.text_cast(dialect.quote('total'))} AS {dialect.quote('total')}" in sql


@pytest.mark.parametrize("name", NAMES)
def test_comparison_of_a_column_served_as_text_compares_its_text(name: str) -> None:
    """A type served as text (an enum, an array, json) is filtered by its text: the column is
    cast in the condition, the value bound as text."""
    d = dialect(name)
    condition = And((Compare("a", Op.EQ, "x", as_text=True), In("a", ("y",), as_text=True)))
    rendered = d.render_select(Select(TableRef("t"), ("id",), where=condition))
    cast = d.text_cast(d.quote("a"))
    assert rendered.sql.endswith(f"WHERE ({cast} = ? AND {cast} IN (?))")
    assert rendered.params == ["x", "y"]
