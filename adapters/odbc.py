"""Any database with an ODBC driver, through pyodbc; the dialect comes from `SQL_DBMS_NAME`.

pyodbc links the system's unixODBC (`libodbc.so.2`), so it is imported only here: SQLite-only
installs never need it, and a missing library becomes one sentence naming the package.
Driver messages can echo connection-string fragments, so passwords are scrubbed from every
message before it is logged or shown.
"""

from __future__ import annotations

import re
from functools import cache
from types import ModuleType
from typing import Any

from bridgehead.adapters import errors
from bridgehead.adapters.base import SourceSettings
from bridgehead.adapters.jobs import Job
from bridgehead.adapters.pooled import PooledAdapter
from bridgehead.adapters.types import Column, TableEntry, TableInfo, TableRef, ValueRules

_SECRET_KEYS = re.compile(
    r"(?i)\b(PWD|PASSWORD|AUTHENTICATION|SECRET|TOKEN)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)"
)


@cache
def _pyodbc() -> ModuleType:
    try:
        import pyodbc  # noqa: PLC0415 - imported on first use; see the module comment
    except ImportError as exc:
        raise errors.DriverMissing(
            "odbc",
            str(exc),
            detail=(
                "pyodbc cannot load unixODBC: install the unixodbc package "
                "(apt-get install unixodbc) and the ODBC driver for your database."
            ),
        ) from exc
    module: ModuleType = pyodbc
    return module


def _secret_values(conn_str: str) -> list[str]:
    """Each secret as written and as the driver may echo it (braces removed, `}}` undone)."""
    found: list[str] = []
    for match in _SECRET_KEYS.finditer(conn_str):
        value = match.group(2)
        if value.startswith("{") and value.endswith("}"):
            found += [value, value[1:-1].replace("}}", "}")]
        elif value:
            found.append(value)
    return sorted(found, key=len, reverse=True)


class ODBCAdapter(PooledAdapter):
    def __init__(self, settings: SourceSettings) -> None:
        self._odbc = _pyodbc()
        super().__init__(settings)
        self._secrets = [s for s in _secret_values(settings.target) if len(s) >= 3]

    def scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    def _connect(self) -> Any:
        options = self._dialect.odbc_options if self._dialect is not None else ""
        target = self.settings.target.rstrip(";") + (f";{options}" if options else "")
        conn = self._odbc.connect(
            target, autocommit=True, timeout=int(self.settings.connect_timeout)
        )
        conn.setdecoding(self._odbc.SQL_CHAR, encoding="utf-8")
        conn.setencoding(encoding="utf-8")
        if self._dialect is not None:
            self._decode_wide_text(conn)
        return conn

    def _decode_wide_text(self, conn: Any) -> None:
        """Read wide text as UTF-8 where the driver's wide form ends at U+0000."""
        if self.dialect.wide_text_as_utf8:
            conn.setdecoding(self._odbc.SQL_WCHAR, encoding="utf-8", ctype=self._odbc.SQL_CHAR)

    @property
    def value_rules(self) -> ValueRules:
        return self.dialect.odbc_value_rules or self.dialect.value_rules

    def _reconnect_for_dialect(self, conn: Any) -> Any:
        if not self.dialect.odbc_options:
            self._decode_wide_text(conn)
            return conn
        conn.close()
        return self._connect()

    def _dbms_name(self, conn: Any) -> str:
        return str(conn.getinfo(self._odbc.SQL_DBMS_NAME))

    def _dbms_version(self, conn: Any) -> str | None:
        try:
            return str(conn.getinfo(self._odbc.SQL_DBMS_VER)).strip() or None
        except self._odbc.Error:
            return None

    def _interrupt(self, job: Job) -> None:
        cursor = job.cursor
        if cursor is not None:
            cursor.cancel()

    def _translate(self, exc: Exception) -> errors.SourceError | None:
        if isinstance(exc, errors.SourceError):
            return exc
        if not isinstance(exc, self._odbc.Error):
            return None
        sqlstate, message = _parts(exc)
        message = self.scrub(message)
        if self._dialect is None:
            return errors.SourceUnavailable(self.source, message)
        return self._classified(sqlstate, message)

    def _classified(self, sqlstate: str, message: str) -> errors.SourceError:
        assert self._dialect is not None
        kind = self._dialect.classify(sqlstate, message)
        return kind(self.source, message, detail=self._dialect.explain(sqlstate, message))

    def _check_diagnostics(self, cursor: Any) -> None:
        for state, text in getattr(cursor, "messages", None) or ():
            sqlstate, message = _diagnostic(str(state), str(text))
            if self.dialect.reports_failure(sqlstate, message):
                raise self._classified(sqlstate, self.scrub(message))

    def _begin(self, job: Job, snapshot: bool) -> None:
        job.by_statement = False
        if snapshot and not self.dialect.snapshot_sql:
            return  # no snapshot to be had: read in autocommit rather than hold locks
        if self.dialect.begin_sql and not snapshot:
            job.conn.execute(self.dialect.begin_sql)
            job.by_statement = True
            return
        job.conn.autocommit = False
        if snapshot:
            job.conn.execute(self.dialect.snapshot_sql)

    def _end(self, job: Job, commit: bool) -> None:
        if job.by_statement:
            job.conn.execute("COMMIT" if commit else "ROLLBACK")
            return
        if job.conn.autocommit:
            return
        try:
            if commit:
                job.conn.commit()
            else:
                job.conn.rollback()
        finally:
            job.conn.autocommit = True

    def _tables(self, job: Job) -> list[TableEntry]:
        # Where the qualifier is the database (MySQL, MariaDB), only the connection's own:
        # ODBC would list every database the user can see.
        own = (
            {"catalog": str(job.conn.getinfo(self._odbc.SQL_DATABASE_NAME))}
            if self.dialect.qualifier_is_catalog
            else {}
        )
        cursor = job.cursor = job.conn.cursor()
        try:
            rows = cursor.tables(tableType="TABLE,VIEW", **own).fetchall()
        finally:
            job.cursor = None
            cursor.close()
        found = []
        for row in rows:
            qualifier = row.table_cat if self.dialect.qualifier_is_catalog else row.table_schem
            if (qualifier or "").lower() in self.dialect.system_qualifiers:
                continue
            view = (row.table_type or "").upper() == "VIEW"
            found.append(TableEntry(TableRef(row.table_name, qualifier or None), view=view))
        return sorted(found, key=lambda e: (e.ref.schema or "", e.ref.name))

    def _unique_keys(self, job: Job, table: TableRef) -> list[tuple[str, ...]]:
        cursor = job.cursor = job.conn.cursor()
        try:
            rows = cursor.statistics(table.name, unique=True, **self._where(table)).fetchall()
        finally:
            job.cursor = None
            cursor.close()
        indexes: dict[str, list[tuple[int, str]]] = {}
        for row in rows:
            if row.index_name and row.column_name and not row.non_unique:
                indexes.setdefault(row.index_name, []).append(
                    (row.ordinal_position, row.column_name)
                )
        return [tuple(name for _, name in sorted(columns)) for columns in indexes.values()]

    def _where(self, table: TableRef) -> dict[str, str | None]:
        """The catalog and schema arguments of ODBC's catalog functions for `table`."""
        if self.dialect.qualifier_is_catalog:
            return {"catalog": table.schema, "schema": None}
        return {"catalog": None, "schema": table.schema}

    def _describe(self, job: Job, table: TableRef) -> TableInfo | None:
        where = self._where(table)
        cursor = job.cursor = job.conn.cursor()
        try:
            found = [
                row
                for row in cursor.columns(table=table.name, **where).fetchall()
                if row.table_name == table.name
            ]
            if not found:
                return None
            found.sort(key=lambda row: row.ordinal_position)
            keys = cursor.primaryKeys(table.name, **where).fetchall()
            declared = self._declared_types(cursor, table)
        finally:
            job.cursor = None
            cursor.close()
        columns = tuple(self._column(row, declared.get(row.column_name)) for row in found)
        ranked = sorted((row.key_seq, row.column_name) for row in keys)
        return TableInfo(table, columns, tuple(name for _, name in ranked))

    def _declared_types(self, cursor: Any, table: TableRef) -> dict[str, str]:
        """Column types as declared (`tinyint(1)`, `bigint(20) unsigned`), where the driver's
        type names say less than the DBMS's own catalog."""
        sql = self.dialect.declared_types_sql
        if sql is None:
            return {}
        return {
            name: str(declared) for name, declared in cursor.execute(sql, table.schema, table.name)
        }

    def _column(self, row: Any, declared: str | None = None) -> Column:
        column_type = self.dialect.column_type(
            declared or row.type_name or "",
            sql_type=row.data_type,
            precision=row.column_size,
            scale=row.decimal_digits,
        )
        return Column(
            row.column_name, column_type, nullable=row.nullable != 0, has_default=_filled_in(row)
        )


def _filled_in(row: Any) -> bool:
    """Whether the database fills the column when an insert leaves it out.

    COLUMN_DEF is the default's text; drivers report the text NULL (MariaDB, SQLite) or
    nothing for "no default". psqlODBC adds AUTO_INCREMENT (serial and identity columns);
    SQL Server names identity columns' types `int identity`."""
    default = row.column_def
    if default is not None and str(default).strip().upper() != "NULL":
        return True
    if "identity" in (row.type_name or "").lower():
        return True
    return bool(getattr(row, "auto_increment", 0) == 1)


def _parts(exc: Exception) -> tuple[str, str]:
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], str):
        return args[0], str(args[1])
    return "", str(args[0]) if args else type(exc).__name__


def _diagnostic(state: str, text: str) -> tuple[str, str]:
    """pyodbc's `('[01000] (1265)', 'message')` as the SQLSTATE and `message (1265)`, the form
    the driver's errors take."""
    found = re.match(r"\[(\w{5})\]\s*\((-?\d+)\)", state)
    if found is None:
        return "", text
    return found.group(1), f"{text} ({found.group(2)})"
