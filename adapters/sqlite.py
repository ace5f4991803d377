"""The embedded default: SQLite through Python's stdlib `sqlite3`, no ODBC needed.

The database file must exist (it is opened with `mode=rw`, so a typo in the path is an
error, not a new empty database). Cancellation uses `Connection.interrupt()`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridgehead.adapters import errors
from bridgehead.adapters.base import Row, SourceSettings
from bridgehead.adapters.inline import InlineSeek
from bridgehead.adapters.jobs import Job
from bridgehead.adapters.pooled import PooledAdapter
from bridgehead.adapters.types import Column, TableEntry, TableInfo, TableRef

BUSY_TIMEOUT = 5.0


class SQLiteAdapter(PooledAdapter):
    coalesce_lookups = False  # a lookup is read on the loop, cheaper than any batching

    def __init__(self, settings: SourceSettings) -> None:
        super().__init__(settings)
        self._inline = InlineSeek(self._open_inline)

    async def lookup(self, sql: str, params: Sequence[Any], max_rows: int) -> list[Row]:
        """On the event loop where `adapters.inline` allows it, else on the pool."""
        rows = self._inline.seek(sql, params, max_rows)
        if rows is None:
            return await self.fetch(sql, params, max_rows)
        return rows

    async def close(self) -> None:
        self._inline.close()
        await super().close()

    async def _open_inline(self, seek: InlineSeek) -> sqlite3.Connection:
        conn: sqlite3.Connection = await self._workers.submit(self._open_connection)
        return await self._workers.submit(seek.prepare, conn)

    @property
    def path(self) -> Path:
        path = Path(self.settings.target).expanduser()
        return path if path.is_absolute() else self.settings.base_dir / path

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise errors.SourceUnavailable(
                self.source,
                f"no SQLite database at {self.path}",
                detail="The SQLite database file does not exist.",
            )
        uri = f"{self.path.resolve().as_uri()}?mode=rw"
        return sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )

    def _dbms_name(self, conn: Any) -> str:
        return "SQLite"

    def _dbms_version(self, conn: Any) -> str | None:
        return str(conn.execute("SELECT sqlite_version()").fetchone()[0])

    def _interrupt(self, job: Job) -> None:
        job.conn.interrupt()

    def _translate(self, exc: Exception) -> errors.SourceError | None:
        if isinstance(exc, errors.SourceError):
            return exc
        if not isinstance(exc, sqlite3.Error):
            return None
        message = str(exc)
        lowered = message.lower()
        kind: type[errors.SourceError] = errors.SourceError
        if isinstance(exc, sqlite3.IntegrityError):
            kind = errors.ConstraintViolated
        elif "interrupted" in lowered:
            kind = errors.QueryTimedOut
        elif any(m in lowered for m in ("unable to open", "disk i/o", "locked", "not a database")):
            kind = errors.SourceUnavailable
        elif isinstance(exc, sqlite3.DataError):
            kind = errors.ValueRejected
        return kind(self.source, message)

    def _begin(self, job: Job, snapshot: bool) -> None:
        # A long read transaction would hold off every writer (rollback-journal databases),
        # so reads run in autocommit; IMMEDIATE makes writers queue instead of deadlocking.
        if not snapshot:
            job.conn.execute("BEGIN IMMEDIATE")

    def _end(self, job: Job, commit: bool) -> None:
        if job.conn.in_transaction:
            job.conn.execute("COMMIT" if commit else "ROLLBACK")

    def _tables(self, job: Job) -> list[TableEntry]:
        rows = job.conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
        return [TableEntry(TableRef(name), view=kind == "view") for name, kind in rows]

    def _unique_keys(self, job: Job, table: TableRef) -> list[tuple[str, ...]]:
        schema = table.schema or "main"
        indexes = job.conn.execute(
            'SELECT name FROM pragma_index_list(?, ?) WHERE "unique" = 1 ORDER BY seq',
            (table.name, schema),
        ).fetchall()
        return [
            tuple(column for (column,) in job.conn.execute(
                "SELECT name FROM pragma_index_info(?, ?) ORDER BY seqno", (index, schema)
            ).fetchall())
            for (index,) in indexes
        ]  # fmt: skip

    def _describe(self, job: Job, table: TableRef) -> TableInfo | None:
        cursor = job.conn.execute(
            'SELECT name, type, "notnull", dflt_value, pk, hidden '
            "FROM pragma_table_xinfo(?, ?) ORDER BY cid",
            (table.name, table.schema or "main"),
        )
        found = [row for row in cursor.fetchall() if row[5] != 1]  # 1: a virtual table's hidden
        if not found:
            return None
        ranked = sorted((pk, name) for name, _, _, _, pk, _ in found if pk)
        rowid = _rowid_alias(found) if len(ranked) == 1 else None
        columns = tuple(
            Column(
                name,
                self.dialect.column_type(db_type or ""),
                nullable=not notnull and not pk,
                # hidden 2 and 3: generated columns; a rowid alias is filled in when left out
                has_default=default is not None or hidden in (2, 3) or name == rowid,
            )
            for name, db_type, notnull, default, pk, hidden in found
        )
        return TableInfo(table, columns, tuple(name for _, name in ranked))


def _rowid_alias(found: list[Any]) -> str | None:
    """The column that is the rowid (a lone `INTEGER PRIMARY KEY`), which SQLite numbers."""
    for name, db_type, _, _, pk, _ in found:
        if pk and (db_type or "").strip().upper() == "INTEGER":
            return str(name)
    return None
