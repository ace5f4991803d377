"""`bridgehead check` for named queries and procedures: compiled or looked up, never run.

A query is handed to the DBMS's own compile-only statement (PostgreSQL and MySQL/MariaDB
`PREPARE`, SQLite `EXPLAIN`): every table, column and function it names must exist, and
nothing executes. Those statements run inside a transaction that is always rolled back, so
even a DBMS that kept something from them (a prepared statement is deallocated anyway) keeps
nothing. A procedure is looked up in the DBMS's catalog: it must exist and be a procedure.
Driver messages can hold SQL text: they go to the log (passwords already scrubbed), and the
report is a sentence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.errors import SourceError, SourceUnavailable
from bridgehead.adapters.types import TableRef
from bridgehead.agent.config.model import ProcedureConfig, QueryConfig
from bridgehead.agent.named_sql import pieces

log = logging.getLogger("bridgehead.check")


@dataclass(frozen=True)
class Finding:
    failed: bool
    """False for a note: the DBMS offers no way to check."""
    message: str


class _RollBack(Exception):
    """Ends the check's transaction without committing it."""


async def check_query(name: str, query: QueryConfig, adapter: Adapter) -> Finding | None:
    """Why the query's SQL does not compile on its database; None if it does."""
    steps = adapter.dialect.compile_steps(pieces(query.sql))
    if not steps:
        return Finding(False, f"not checked: no compile-only statement on {adapter.dialect.name}")
    try:
        async with adapter.transaction(snapshot=True) as tx:
            for sql, params in steps:
                await tx.execute(sql, params)
            raise _RollBack
    except _RollBack:
        return None
    except SourceUnavailable:
        raise
    except SourceError as exc:
        log.info("queries.%s does not compile: %s", name, exc.internal)
        return Finding(
            True,
            "the database cannot compile this statement: a table, column or function it names "
            "does not exist, or its syntax is wrong; try it in the database's own client",
        )


async def check_procedure(
    name: str, procedure: ProcedureConfig, adapter: Adapter
) -> Finding | None:
    """Why the procedure cannot be called (absent, or a function); None if it is a procedure."""
    lookup = adapter.dialect.routine_lookup(TableRef.parse(procedure.name))
    if lookup is None:
        return Finding(False, f"not checked: no procedure catalog on {adapter.dialect.name}")
    rows = await adapter.fetch(lookup[0], list(lookup[1]), 10)
    kinds = {str(row[0]).upper() for row in rows}
    if "PROCEDURE" in kinds:
        return None
    if "FUNCTION" in kinds:
        call = f"{procedure.name}(:arg)"
        select = (
            f"SELECT * FROM {call}" if adapter.dialect.name == "postgresql" else f"SELECT {call}"
        )
        return Finding(
            True,
            f"{procedure.name} is a function, not a procedure, so it cannot be called; expose "
            f'it as a named query instead, e.g. queries: {{{name}: {{sql: "{select}", '
            "params: {arg: integer}}}",
        )
    return Finding(True, f"no procedure named {procedure.name!r} in the database")
