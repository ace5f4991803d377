# The statement methods of an adapter and its transactions (select, insert, update, delete, a
# named query run, probed, streamed and described, a procedure call), per DBMS: the SQL each
# sends and the values it binds, checked against golden strings on a recording driver, and
# parsed by sqlglot for the DBMSs with no server here (SQL Server, Oracle, DB2, Access).
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import pytest
import sqlglot
from recording import Answer, Driver, RecordingAdapter
from sqlglot import exp

from bridgehead.adapters.dialects.postgresql import PostgreSQLDialect
from bridgehead.adapters.sql import (
    And,
    Call,
    Compare,
    Delete,
    Insert,
    Op,
    OrderBy,
    Query,
    Select,
    Update,
)
from bridgehead.adapters.types import ColumnType, Kind, TableRef

DBMS_NAMES = {
    "postgresql": "PostgreSQL",
    "mysql": "MariaDB",
    "sqlite": "SQLite",
    "mssql": "Microsoft SQL Server",
    "oracle": "Oracle",
    "db2": "DB2/LINUXX8664",
    "access": "ACCESS",
}
NAMES = tuple(DBMS_NAMES)
SERVERLESS = {"mssql": "tsql", "oracle": "oracle", "db2": "", "access": "tsql"}
"""sqlglot's reader for each DBMS with no server here (DB2 and Access through stand-ins, as
in test_dialects)."""
BRACKETS = ("mssql", "access")

Sent = list[tuple[str, list[Any]]]


def quoted(name: str, ansi_sql: str) -> str:
    """`ansi_sql` with its "double-quoted" identifiers in DBMS `name`'s quotes."""
    left, right = {"mysql": ("`", "`"), **dict.fromkeys(BRACKETS, ("[", "]"))}.get(name, '""')
    return re.sub(r'"([^"]*)"', lambda m: f"{left}{m.group(1)}{right}", ansi_sql)


async def sent(
    name: str, action: Callable[[RecordingAdapter], Awaitable[Any]], answer: Any = None
) -> tuple[Sent, Any]:
    """What `action` sends to DBMS `name` (without session set-up), and what it returned."""
    driver = Driver() if answer is None else Driver(answer=answer)
    adapter = RecordingAdapter(DBMS_NAMES[name], driver)
    await adapter.open()
    try:
        result = await action(adapter)
    finally:
        await adapter.close()
    return adapter.statements(), result


async def in_transaction(
    name: str, action: Callable[[Any], Awaitable[Any]], answer: Any = None
) -> tuple[Sent, Any]:
    """What `action` sends inside a write transaction (begin and commit left out)."""

    async def run(adapter: RecordingAdapter) -> Any:
        async with adapter.transaction() as tx:
            return await action(tx)

    statements, result = await sent(name, run, answer)
    assert statements[0][0] == "-- begin"
    assert statements[-1][0] == "-- commit"
    return statements[1:-1], result


def parses(name: str, sql: str, kind: type[exp.Expression]) -> None:
    """sqlglot reads `sql` as one statement of `kind`, where DBMS `name` has no server here."""
    if name in SERVERLESS:
        assert isinstance(sqlglot.parse_one(sql, read=SERVERLESS[name]), kind), sql


ORDERS = TableRef("orders", schema="sales")
AT = dt.datetime(2024, 1, 2, 3, 4, 5)
AT_BOUND = {"mysql": "2024-01-02 03:04:05", "sqlite": "2024-01-02 03:04:05"}
"""How each DBMS's binding sends AT (as text where its driver would drop the microseconds)."""

# -- resources -------------------------------------------------------------------------------

KEY_LOOKUP = Select(ORDERS, ("id", "total"), where=Compare("id", Op.EQ, 7), limit=2)
LOOKUP_SQL = {
    "postgresql": 'SELECT "id", "total" FROM "sales"."orders" WHERE "id" = ? LIMIT 2',
    "mysql": "SELECT `id`, `total` FROM `sales`.`orders` WHERE `id` = ? LIMIT 2",
    "sqlite": 'SELECT "id", "total" FROM "sales"."orders" WHERE "id" = ? LIMIT 2',
    "mssql": "SELECT [id], [total] FROM [sales].[orders] WHERE [id] = ?"
    " ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH NEXT 2 ROWS ONLY",
    "oracle": 'SELECT "id", "total" FROM "sales"."orders" WHERE "id" = ? FETCH FIRST 2 ROWS ONLY',
    "db2": 'SELECT "id", "total" FROM "sales"."orders" WHERE "id" = ? FETCH FIRST 2 ROWS ONLY',
    "access": "SELECT TOP 2 [id], [total] FROM [sales].[orders] WHERE [id] = ?",
}
LOCKED_SQL = {
    "postgresql": LOOKUP_SQL["postgresql"] + " FOR UPDATE",
    "mysql": LOOKUP_SQL["mysql"] + " FOR UPDATE",
    "sqlite": LOOKUP_SQL["sqlite"],  # the transaction holds the database's write lock
    "mssql": "SELECT [id], [total] FROM [sales].[orders] WITH (UPDLOCK, ROWLOCK)"
    " WHERE [id] = ? ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH NEXT 2 ROWS ONLY",
    "oracle": LOOKUP_SQL["oracle"] + " FOR UPDATE",
    "db2": LOOKUP_SQL["db2"] + " FOR UPDATE",
    "access": LOOKUP_SQL["access"],
}


def rows_of(columns: list[str], *rows: tuple[Any, ...]) -> Callable[[str], Answer]:
    return lambda sql: (columns, list(rows))


@pytest.mark.parametrize("name", NAMES)
async def test_select_by_key(name: str) -> None:
    """`Adapter.select` sends the DBMS's own row limit with the key bound, and returns the
    rows the driver gave, no more than the limit."""
    statements, rows = await sent(
        name, lambda a: a.select(KEY_LOOKUP), rows_of(["id", "total"], (7, 1), (7, 2), (7, 3))
    )
    assert statements == [(LOOKUP_SQL[name], [7])]
    assert rows == [(7, 1), (7, 2)]
    parses(name, LOOKUP_SQL[name], exp.Select)


@pytest.mark.parametrize("name", NAMES)
async def test_locked_select_in_a_transaction(name: str) -> None:
    """A transaction's locking select holds the row the DBMS's way (FOR UPDATE, SQL Server's
    table hints, or nothing where the transaction already locks the database)."""
    locked = Select(KEY_LOOKUP.table, KEY_LOOKUP.columns, KEY_LOOKUP.where, limit=2, lock=True)
    statements, _ = await in_transaction(name, lambda tx: tx.select(locked))
    assert statements == [(LOCKED_SQL[name], [7])]
    parses(name, LOCKED_SQL[name], exp.Select)


INSERT_SQL = {
    "postgresql": 'INSERT INTO "sales"."orders" ("id", "at") VALUES (?, ?) RETURNING "id"',
    "mysql": "INSERT INTO `sales`.`orders` (`id`, `at`) VALUES (?, ?) RETURNING `id`",
    "sqlite": 'INSERT INTO "sales"."orders" ("id", "at") VALUES (?, ?) RETURNING "id"',
    "mssql": "INSERT INTO [sales].[orders] ([id], [at]) OUTPUT INSERTED.[id] VALUES (?, ?)",
    "oracle": 'INSERT INTO "sales"."orders" ("id", "at") VALUES (?, ?)',
    "db2": 'INSERT INTO "sales"."orders" ("id", "at") VALUES (?, ?)',
    "access": "INSERT INTO [sales].[orders] ([id], [at]) VALUES (?, ?)",
}
DEFAULTS_SQL = {
    "postgresql": 'INSERT INTO "sales"."orders" DEFAULT VALUES RETURNING "id"',
    "mysql": "INSERT INTO `sales`.`orders` () VALUES () RETURNING `id`",
    "sqlite": 'INSERT INTO "sales"."orders" DEFAULT VALUES RETURNING "id"',
    "mssql": "INSERT INTO [sales].[orders] OUTPUT INSERTED.[id] DEFAULT VALUES",
    "oracle": 'INSERT INTO "sales"."orders" DEFAULT VALUES',
    "db2": 'INSERT INTO "sales"."orders" DEFAULT VALUES',
    "access": "INSERT INTO [sales].[orders] DEFAULT VALUES",
}
GENERATED_KEY_SQL = {
    "mysql": "SELECT LAST_INSERT_ID()",
    "sqlite": "SELECT last_insert_rowid()",
    "mssql": "SELECT SCOPE_IDENTITY()",
}


@pytest.mark.parametrize("name", NAMES)
async def test_insert(name: str) -> None:
    """`Transaction.insert` names the columns it sets and asks for the key back where the
    DBMS returns it (RETURNING, SQL Server's OUTPUT), each value bound the DBMS's way."""
    row = Insert(ORDERS, ("id", "at"), (7, AT), returning=("id",))
    statements, _ = await in_transaction(name, lambda tx: tx.insert(row))
    assert statements == [(INSERT_SQL[name], [7, AT_BOUND.get(name, AT)])]
    parses(name, INSERT_SQL[name], exp.Insert)


@pytest.mark.parametrize("name", NAMES)
async def test_insert_of_defaults_only(name: str) -> None:
    """An insert setting no column lets the table fill every one (DEFAULT VALUES, MySQL's
    `() VALUES ()`)."""
    row = Insert(ORDERS, (), (), returning=("id",))
    statements, _ = await in_transaction(name, lambda tx: tx.insert(row))
    assert statements == [(DEFAULTS_SQL[name], [])]
    # sqlglot's T-SQL reader takes no OUTPUT before DEFAULT VALUES (SQL Server does); Oracle
    # itself has no DEFAULT VALUES, so such an insert fails there as it always has.
    if name not in ("mssql", "oracle"):
        parses(name, DEFAULTS_SQL[name], exp.Insert)


@pytest.mark.parametrize("name", NAMES)
async def test_generated_key(name: str) -> None:
    """`Transaction.generated_key` reads the key the last insert generated where the DBMS
    can tell it, and sends nothing (None) where it cannot."""
    statements, key = await in_transaction(
        name, lambda tx: tx.generated_key(), rows_of(["key"], (42,))
    )
    expected = GENERATED_KEY_SQL.get(name)
    assert statements == ([(expected, [])] if expected else [])
    assert key == ((42,) if expected else None)


@pytest.mark.parametrize("name", NAMES)
async def test_update_and_delete(name: str) -> None:
    """`Transaction.update` sets the given columns of the rows its condition selects, and
    `Transaction.delete` removes them; the set values bound before the condition's."""
    where = And((Compare("id", Op.EQ, 7), Compare("line", Op.EQ, 2)))

    async def write(tx: Any) -> None:
        await tx.update(Update(ORDERS, ("label", "at"), ("x", AT), where))
        await tx.delete(Delete(ORDERS, where))

    statements, _ = await in_transaction(name, write)
    update = quoted(name, 'UPDATE "sales"."orders" SET "label" = ?, "at" = ?')
    delete = quoted(name, 'DELETE FROM "sales"."orders"')
    condition = quoted(name, ' WHERE ("id" = ? AND "line" = ?)')
    assert statements == [
        (update + condition, ["x", AT_BOUND.get(name, AT), 7, 2]),
        (delete + condition, [7, 2]),
    ]
    parses(name, update + condition, exp.Update)
    parses(name, delete + condition, exp.Delete)


PAGE = Select(
    ORDERS,
    ("id", "label"),
    where=Compare("grp", Op.EQ, 3),
    order=(OrderBy("id"),),
    limit=1,
    as_text=frozenset({"label"}),
)
BEYOND_SQL = {
    "postgresql": 'SELECT "id" FROM "sales"."orders" WHERE "grp" = ? ORDER BY "id" ASC'
    " LIMIT 1 OFFSET 100",
    "mysql": "SELECT `id` FROM `sales`.`orders` WHERE `grp` = ? ORDER BY `id` ASC"
    " LIMIT 1 OFFSET 100",
    "sqlite": 'SELECT "id" FROM "sales"."orders" WHERE "grp" = ? ORDER BY "id" ASC'
    " LIMIT 1 OFFSET 100",
    "mssql": "SELECT [id] FROM [sales].[orders] WHERE [grp] = ? ORDER BY [id] ASC"
    " OFFSET 100 ROWS FETCH NEXT 1 ROWS ONLY",
    "oracle": 'SELECT "id" FROM "sales"."orders" WHERE "grp" = ? ORDER BY "id" ASC'
    " OFFSET 100 ROWS FETCH FIRST 1 ROWS ONLY",
    "db2": 'SELECT "id" FROM "sales"."orders" WHERE "grp" = ? ORDER BY "id" ASC'
    " OFFSET 100 ROWS FETCH FIRST 1 ROWS ONLY",
}


@pytest.mark.parametrize("name", NAMES)
async def test_rows_beyond_a_count(name: str) -> None:
    """`Transaction.has_rows_beyond` skips the first rows in the database and reads one row of
    one column as stored; where the DBMS cannot skip rows (Access) it sends nothing."""
    statements, found = await in_transaction(
        name, lambda tx: tx.has_rows_beyond(PAGE, 100), rows_of(["id"], (101,))
    )
    if name not in BEYOND_SQL:
        assert (statements, found) == ([], None)
        return
    assert (statements, found) == ([(BEYOND_SQL[name], [3])], True)
    parses(name, BEYOND_SQL[name], exp.Select)


# -- named queries -------------------------------------------------------------------------

QUERY = Query(
    ("SELECT id, total FROM orders WHERE at > ", " AND grp = ", " ORDER BY id"),
    types=("date", "integer"),
    values=(dt.date(2024, 1, 1), 3),
)
PG_QUERY = (
    "SELECT id, total FROM orders WHERE at > CAST(? AS date) AND grp = CAST(? AS bigint)"
    " ORDER BY id"
)
PLAIN_QUERY = "SELECT id, total FROM orders WHERE at > ? AND grp = ? ORDER BY id"


def query_sql(name: str) -> str:
    return PG_QUERY if name == "postgresql" else PLAIN_QUERY


def query_params(name: str) -> list[Any]:
    return ["2024-01-01" if name == "sqlite" else dt.date(2024, 1, 1), 3]


@pytest.mark.parametrize("name", NAMES)
async def test_named_query(name: str) -> None:
    """`Adapter.run_query` sends the owner's SQL with the DBMS's placeholders (typed on
    PostgreSQL, whose driver sends parameters untyped) and the values bound."""
    statements, result = await sent(
        name, lambda a: a.run_query(QUERY, 10), rows_of(["id", "total"], (1, 2))
    )
    assert statements == [(query_sql(name), query_params(name))]
    assert (result.columns, result.rows) == (["id", "total"], [(1, 2)])


def test_described_query_is_wrapped_where_columns_come_as_text() -> None:
    """A described query whose columns PostgreSQL's driver would convert wrongly is wrapped so
    that they come as text, in the query's own order; the probe past a count is not."""
    described = Query(
        QUERY.pieces,
        QUERY.types,
        QUERY.values,
        columns=(
            ("id", ColumnType(Kind.INTEGER, "int4")),
            ("total", ColumnType(Kind.DECIMAL, "numeric")),
        ),
    )
    dialect = PostgreSQLDialect()
    assert dialect.render_query(described).sql == (
        f'SELECT bh_q."id", CAST(bh_q."total" AS TEXT) AS "total" FROM ({PG_QUERY}) AS bh_q'
    )
    assert dialect.render_query(described, wrap=False).sql == PG_QUERY


QUERY_BEYOND = {
    "mssql": "SELECT 1 FROM ({}) bh_rows ORDER BY (SELECT NULL)"
    " OFFSET 100 ROWS FETCH NEXT 1 ROWS ONLY",
    "oracle": "SELECT 1 FROM ({}) bh_rows OFFSET 100 ROWS FETCH FIRST 1 ROWS ONLY",
    "db2": "SELECT 1 FROM ({}) bh_rows OFFSET 100 ROWS FETCH FIRST 1 ROWS ONLY",
}


@pytest.mark.parametrize("name", NAMES)
async def test_named_query_rows_beyond_a_count(name: str) -> None:
    """`Adapter.query_has_rows_beyond` runs the query once more inside a statement that skips
    its first rows and gives one row at most; nothing is sent where the DBMS cannot skip."""
    statements, found = await sent(
        name, lambda a: a.query_has_rows_beyond(QUERY, 100), rows_of(["1"])
    )
    if name == "access":
        assert (statements, found) == ([], None)
        return
    probe = QUERY_BEYOND.get(name, "SELECT 1 FROM ({}) bh_rows LIMIT 1 OFFSET 100")
    probe = probe.format(query_sql(name))
    assert (statements, found) == ([(probe, query_params(name))], False)
    parses(name, probe, exp.Select)


def batches_of(*batches: list[tuple[Any, ...]]) -> Callable[[str], Answer]:
    """The query's rows (every batch) for a plain statement; for a FETCH, the next batch."""
    pending = list(batches)

    def answer(sql: str) -> Answer:
        if sql.startswith("FETCH"):
            return ["id"], pending.pop(0) if pending else []
        if sql.startswith("DECLARE"):
            return [], []
        return ["id"], [row for batch in batches for row in batch]

    return answer


async def streamed(adapter: RecordingAdapter) -> list[list[tuple[Any, ...]]]:
    async with aclosing(adapter.stream_query(QUERY, 2)) as results:
        return [result.rows async for result in results]


@pytest.mark.parametrize("name", NAMES)
async def test_named_query_stream(name: str) -> None:
    """`Adapter.stream_query` reads PostgreSQL's rows from a server-side cursor, batch by
    batch, in one snapshot transaction; elsewhere it runs the query once and reads the
    driver's cursor in batches."""
    statements, batches = await sent(name, streamed, batches_of([(1,), (2,)], [(3,)]))
    assert batches == [[(1,), (2,)], [(3,)]]
    if name != "postgresql":
        assert statements == [(query_sql(name), query_params(name))]
        return
    assert statements == [
        ("-- begin snapshot", []),
        (f"DECLARE bh_stream NO SCROLL CURSOR FOR {PG_QUERY}", query_params(name)),
        ("FETCH 2 FROM bh_stream", []),
        ("FETCH 2 FROM bh_stream", []),
        ("FETCH 2 FROM bh_stream", []),
        ("-- commit", []),
    ]


DESCRIBED = {
    "postgresql": [
        "CREATE OR REPLACE TEMP VIEW bh_probe AS SELECT id, total FROM orders"
        " WHERE at > CAST(NULL AS date) AND grp = CAST(NULL AS bigint) ORDER BY id",
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute"
        " WHERE attrelid = 'pg_temp.bh_probe'::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        "DROP VIEW pg_temp.bh_probe",
    ],
    "mysql": [
        "CREATE OR REPLACE TEMPORARY TABLE bh_probe AS SELECT * FROM (SELECT id, total"
        " FROM orders WHERE at > CAST(NULL AS DATE) AND grp = CAST(NULL AS SIGNED)"
        " ORDER BY id) bh_q LIMIT 0",
        "SHOW COLUMNS FROM bh_probe",
        "DROP TEMPORARY TABLE bh_probe",
    ],
    "sqlite": [
        "CREATE TEMP VIEW bh_probe AS SELECT id, total FROM orders"
        " WHERE at > NULL AND grp = NULL ORDER BY id",
        "SELECT name, type FROM pragma_table_info('bh_probe', 'temp')",
        "DROP VIEW temp.bh_probe",
    ],
}


def described_columns(sql: str) -> Answer:
    if sql.startswith(("SELECT attname", "SHOW COLUMNS", "SELECT name, type")):
        return ["name", "type"], [("id", "integer"), ("total", "numeric(10,2)")]
    return [], []


@pytest.mark.parametrize("name", NAMES)
async def test_named_query_description(name: str) -> None:
    """`Adapter.describe_query` makes a temporary object from the query with typed NULLs for
    its parameters, reads its columns' declared types and drops it; None, sending nothing,
    where the DBMS has no such way."""
    statements, columns = await sent(name, lambda a: a.describe_query(QUERY), described_columns)
    if name not in DESCRIBED:
        assert (statements, columns) == ([], None)
        return
    assert statements == [(sql, []) for sql in DESCRIBED[name]]
    assert [(column, kind.kind) for column, kind in columns] == [
        ("id", Kind.INTEGER),
        ("total", Kind.DECIMAL),
    ]


# -- procedures ------------------------------------------------------------------------------

CALL = Call(
    TableRef("settle", schema="sales"),
    (("amount", "in"), ("fee", "out"), ("balance", "inout")),
    {"amount": 5, "balance": 100},
)
CALL_SQL: dict[str, Sent] = {
    "postgresql": [('CALL "sales"."settle"(?, NULL, ?)', [5, 100])],
    "mysql": [
        ("SET @bh_2 = ?", [100]),
        ("CALL `sales`.`settle`(?, @bh_1, @bh_2)", [5]),
        ("SELECT @bh_1 AS `fee`, @bh_2 AS `balance`", []),
    ],
}


def procedure_answer(sql: str) -> Answer:
    """A result set of the procedure's own, then its output parameters' row."""
    if sql.startswith(("SELECT @", "{CALL", "CALL")):
        return ["fee", "balance"], [(1, 96)]
    return [], []


@pytest.mark.parametrize("name", NAMES)
async def test_procedure_call(name: str) -> None:
    """`Adapter.call_procedure` calls the procedure the DBMS's way (ODBC's `{CALL}` escape,
    PostgreSQL's CALL, MySQL's session variables for OUT and INOUT) with its inputs bound,
    and gives its output parameters apart from its result sets."""
    statements, called = await sent(name, lambda a: a.call_procedure(CALL, 10), procedure_answer)
    odbc = quoted(name, '{CALL "sales"."settle"(?, NULL, ?)}')
    assert statements == CALL_SQL.get(name, [(odbc, [5, 100])])
    assert called.output is not None
    assert (called.output.columns, called.output.rows) == (["fee", "balance"], [(1, 96)])
    assert len(called.result_sets) == (1 if name == "mysql" else 0)
