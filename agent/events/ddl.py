"""The trigger capture's database side: an outbox table and the triggers that fill it.

Sans-IO: for a dialect's name and the resources to capture, the statements that install the
transactional outbox and the statements that remove exactly what install made. Each change
to a captured table writes one row into `bridgehead_outbox` (beside the table: in its schema,
or its database on MySQL/MariaDB) in the change's own transaction:

    seq         64-bit, increasing, assigned as the row is written (not as it commits)
    resource    the Bridgehead resource name
    op          'I', 'U' or 'D'
    row_key     a JSON object of the key columns' values: NEW's for I and U, OLD's for D;
                an update that changes the key writes a 'D' for the old key, then an 'I'
    changed_at  when the row was written (the DBMS's clock)

Rules: identifiers come only from the config (validated resource names, table and column
names the config's owner wrote) and are quoted by the dialect; names that cannot be written
safely as a literal are refused. Every statement is idempotent (IF NOT EXISTS, CREATE OR
REPLACE, or drop-then-create), so install may run again and leaves one set of triggers.
Where a DBMS limits identifier length, a long resource name is shortened with a hash of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridgehead.adapters.dialects import DIALECTS, Dialect
from bridgehead.adapters.types import TableRef

OUTBOX = "bridgehead_outbox"
COLUMNS = ("seq", "resource", "op", "row_key", "changed_at")
TRIGGER_SUFFIXES = ("ins", "upd", "del")
MAX_NAME = {"postgresql": 63, "mysql": 64}
"""The longest identifier a DBMS keeps whole (the others here take 128)."""


@dataclass(frozen=True)
class Capture:
    """What triggers are made for: a resource, its table and its key columns."""

    resource: str
    table: TableRef
    key: tuple[str, ...]


def outbox_ref(table: TableRef) -> TableRef:
    """The outbox beside `table` (in its schema, or its database on MySQL/MariaDB)."""
    return TableRef(OUTBOX, table.schema)


def object_name(dialect: str, resource: str, suffix: str) -> str:
    """`bridgehead_<resource>_<suffix>`, shortened with a hash where the DBMS would cut it."""
    name = f"bridgehead_{resource}_{suffix}"
    limit = MAX_NAME.get(dialect, 128)
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(resource.encode()).hexdigest()[:8]
    room = limit - len(f"bridgehead__{digest}_{suffix}")
    return f"bridgehead_{resource.encode()[:room].decode(errors='ignore')}_{digest}_{suffix}"


def trigger_names(dialect: str, resource: str) -> tuple[str, str, str]:
    """The insert, update and delete triggers' names for a resource."""
    ins, upd, dele = (object_name(dialect, resource, s) for s in TRIGGER_SUFFIXES)
    return ins, upd, dele


def install_statements(dialect: str, captures: Sequence[Capture]) -> list[str]:
    """The outbox (once per schema) and each capture's triggers, in the order to run them."""
    writer = _writer(dialect)
    statements: list[str] = []
    for ref in _outboxes(captures):
        statements += writer.create_outbox(ref)
    for capture in captures:
        _check(dialect, capture, need_key=True)
        statements += writer.create_triggers(capture)
    return statements


def uninstall_statements(
    dialect: str, captures: Sequence[Capture], *, drop_outbox: bool
) -> list[str]:
    """Each capture's triggers (and function) dropped; with `drop_outbox`, the outboxes too.
    Dropping what does not exist is no error, so uninstall may also run again."""
    writer = _writer(dialect)
    statements: list[str] = []
    for capture in captures:
        _check(dialect, capture, need_key=False)
        statements += writer.drop_triggers(capture)
    if drop_outbox:
        for ref in _outboxes(captures):
            statements += writer.drop_outbox(ref)
    return statements


def _outboxes(captures: Sequence[Capture]) -> list[TableRef]:
    return list(dict.fromkeys(outbox_ref(c.table) for c in captures))


def _check(dialect: str, capture: Capture, *, need_key: bool) -> None:
    if need_key and not capture.key:
        raise ValueError(f"resource {capture.resource!r} has no key to capture changes by")
    names = (capture.resource, *capture.key)
    if dialect == "mysql" and any("\\" in n for n in names):
        raise ValueError(f"resource {capture.resource!r}: a backslash in a key column's name")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _writer(dialect: str) -> _Writer:
    writers: dict[str, type[_Writer]] = {
        "postgresql": _PostgreSQL,
        "mysql": _MySQL,
        "sqlite": _SQLite,
        "mssql": _SQLServer,
        "oracle": _Oracle,
        "db2": _Db2,
    }
    if dialect not in writers:
        raise ValueError(f"trigger capture does not support {dialect!r} databases")
    found = next(d for d in DIALECTS if d.name == dialect)
    return writers[dialect](found())


class _Writer:
    """What every DBMS's statements share; each subclass writes its own DDL."""

    name = ""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect

    def q(self, identifier: str) -> str:
        return self.d.quote(identifier)

    def outbox(self, capture: Capture) -> str:
        return self.d.table(outbox_ref(capture.table))

    def names(self, capture: Capture) -> tuple[str, str, str]:
        return trigger_names(self.name, capture.resource)

    def scoped(self, capture: Capture, name: str) -> str:
        """A trigger's name, in its table's schema."""
        return self.d.table(TableRef(name, capture.table.schema))

    def insert(self, capture: Capture, op: str, row_key: str) -> str:
        columns = ", ".join(self.q(c) for c in ("resource", "op", "row_key"))
        values = f"{_literal(capture.resource)}, '{op}', {row_key}"
        return f"INSERT INTO {self.outbox(capture)} ({columns}) VALUES ({values})"

    def row_key(self, capture: Capture, row: str) -> str:
        """The JSON object of `row`'s (NEW's or OLD's) key columns."""
        raise NotImplementedError

    def same_key(self, capture: Capture, new: str, old: str) -> str:
        """True when NEW's key equals OLD's, NULLs equal to each other."""
        raise NotImplementedError

    def row_update(self, capture: Capture, new: str, old: str, then: str = " THEN") -> str:
        """IF the key changed: a D for OLD and an I for NEW; ELSE a U (row-level triggers)."""
        return (
            f"IF NOT ({self.same_key(capture, new, old)}){then}\n"
            f"    {self.insert(capture, 'D', self.row_key(capture, old))};\n"
            f"    {self.insert(capture, 'I', self.row_key(capture, new))};\n"
            "  ELSE\n"
            f"    {self.insert(capture, 'U', self.row_key(capture, new))};\n"
            "  END IF;"
        )

    def create_outbox(self, ref: TableRef) -> list[str]:
        raise NotImplementedError

    def outbox_table(self, ref: TableRef, types: Sequence[str], head: str = "CREATE TABLE") -> str:
        """`CREATE TABLE ref (...)` with the outbox's columns of these types, in order."""
        columns = ",\n".join(f"  {self.q(c)} {t}" for c, t in zip(COLUMNS, types, strict=True))
        return f"{head} {self.d.table(ref)} (\n{columns}\n)"

    def drop_outbox(self, ref: TableRef) -> list[str]:
        return [f"DROP TABLE IF EXISTS {self.d.table(ref)}"]

    def create_triggers(self, capture: Capture) -> list[str]:
        raise NotImplementedError

    def drop_triggers(self, capture: Capture) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {self.scoped(capture, n)}" for n in self.names(capture)]

    def pairs(self, capture: Capture, value: Callable[[str], str], sep: str = ", ") -> str:
        return ", ".join(f"{_literal(k)}{sep}{value(k)}" for k in capture.key)


class _PostgreSQL(_Writer):
    """A plpgsql function per resource (SECURITY DEFINER: the legacy application's user needs
    no right on the outbox) and three row triggers calling it."""

    name = "postgresql"

    def function(self, capture: Capture) -> str:
        name = object_name(self.name, capture.resource, "capture")
        return self.d.table(TableRef(name, capture.table.schema))

    def row_key(self, capture: Capture, row: str) -> str:
        pairs = self.pairs(capture, lambda k: f"{row}.{self.q(k)}")
        return f"json_build_object({pairs})::text"

    def same_key(self, capture: Capture, new: str, old: str) -> str:
        return " AND ".join(
            f"{new}.{self.q(k)} IS NOT DISTINCT FROM {old}.{self.q(k)}" for k in capture.key
        )

    def create_outbox(self, ref: TableRef) -> list[str]:
        types = ("bigserial PRIMARY KEY", "varchar(64) NOT NULL", "char(1) NOT NULL",
                 "text NOT NULL",
                 "timestamp with time zone NOT NULL DEFAULT clock_timestamp()")  # fmt: skip
        return [self.outbox_table(ref, types, "CREATE TABLE IF NOT EXISTS")]

    def create_triggers(self, capture: Capture) -> list[str]:
        function = self.function(capture)
        body = (
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
            "LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $bridgehead$\n"
            "BEGIN\n"
            "  IF TG_OP = 'INSERT' THEN\n"
            f"    {self.insert(capture, 'I', self.row_key(capture, 'NEW'))};\n"
            "  ELSIF TG_OP = 'DELETE' THEN\n"
            f"    {self.insert(capture, 'D', self.row_key(capture, 'OLD'))};\n"
            "  ELSE\n    " + self.row_update(capture, "NEW", "OLD").replace("\n", "\n  ") + "\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "END\n"
            "$bridgehead$"
        )
        table = self.d.table(capture.table)
        statements = [body]
        for name, event in zip(self.names(capture), ("INSERT", "UPDATE", "DELETE"), strict=True):
            statements += [
                f"DROP TRIGGER IF EXISTS {self.q(name)} ON {table}",
                f"CREATE TRIGGER {self.q(name)} AFTER {event} ON {table}\n"
                f"FOR EACH ROW EXECUTE PROCEDURE {function}()",
            ]
        return statements

    def drop_triggers(self, capture: Capture) -> list[str]:
        table = self.d.table(capture.table)
        drops = [f"DROP TRIGGER IF EXISTS {self.q(n)} ON {table}" for n in self.names(capture)]
        return [*drops, f"DROP FUNCTION IF EXISTS {self.function(capture)}()"]


class _MySQL(_Writer):
    """MySQL 5.7.8+ and MariaDB 10.2.3+ (JSON_OBJECT): AFTER row triggers, which run with
    their definer's rights."""

    name = "mysql"

    def row_key(self, capture: Capture, row: str) -> str:
        return f"JSON_OBJECT({self.pairs(capture, lambda k: f'{row}.{self.q(k)}')})"

    def same_key(self, capture: Capture, new: str, old: str) -> str:
        return " AND ".join(f"{new}.{self.q(k)} <=> {old}.{self.q(k)}" for k in capture.key)

    def create_outbox(self, ref: TableRef) -> list[str]:
        types = ("BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "VARCHAR(64) NOT NULL",
                 "CHAR(1) NOT NULL", "TEXT NOT NULL",
                 "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)")  # fmt: skip
        create = self.outbox_table(ref, types, "CREATE TABLE IF NOT EXISTS")
        return [create + " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"]

    def create_triggers(self, capture: Capture) -> list[str]:
        table = self.d.table(capture.table)
        ins, upd, dele = (self.scoped(capture, n) for n in self.names(capture))
        return [
            *self.drop_triggers(capture),
            f"CREATE TRIGGER {ins} AFTER INSERT ON {table} FOR EACH ROW\n"
            f"{self.insert(capture, 'I', self.row_key(capture, 'NEW'))}",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {table} FOR EACH ROW\n"
            f"BEGIN\n  {self.row_update(capture, 'NEW', 'OLD')}\nEND",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {table} FOR EACH ROW\n"
            f"{self.insert(capture, 'D', self.row_key(capture, 'OLD'))}",
        ]


class _SQLite(_Writer):
    """SQLite 3.38+ (or an older one with JSON1): row triggers. A trigger body may not
    qualify table names, so the outbox is named bare there (it is in the table's schema)."""

    name = "sqlite"

    def outbox(self, capture: Capture) -> str:
        return self.q(OUTBOX)

    def row_key(self, capture: Capture, row: str) -> str:
        return f"json_object({self.pairs(capture, lambda k: f'{row}.{self.q(k)}')})"

    def same_key(self, capture: Capture, new: str, old: str) -> str:
        return " AND ".join(f"{new}.{self.q(k)} IS {old}.{self.q(k)}" for k in capture.key)

    def insert_where(self, capture: Capture, op: str, row: str, where: str) -> str:
        columns = ", ".join(self.q(c) for c in ("resource", "op", "row_key"))
        row_key = self.row_key(capture, row)
        return (
            f"INSERT INTO {self.outbox(capture)} ({columns}) "
            f"SELECT {_literal(capture.resource)}, '{op}', {row_key} WHERE {where}"
        )

    def create_outbox(self, ref: TableRef) -> list[str]:
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        types = ("INTEGER PRIMARY KEY AUTOINCREMENT", "VARCHAR(64) NOT NULL", "CHAR(1) NOT NULL",
                 "TEXT NOT NULL", f"TIMESTAMP NOT NULL DEFAULT ({now})")  # fmt: skip
        return [self.outbox_table(ref, types, "CREATE TABLE IF NOT EXISTS")]

    def create_triggers(self, capture: Capture) -> list[str]:
        table = self.q(capture.table.name)
        ins, upd, dele = (self.scoped(capture, n) for n in self.names(capture))
        same = self.same_key(capture, "NEW", "OLD")
        return [
            *self.drop_triggers(capture),
            f"CREATE TRIGGER {ins} AFTER INSERT ON {table}\nBEGIN\n"
            f"  {self.insert(capture, 'I', self.row_key(capture, 'NEW'))};\nEND",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {table}\nBEGIN\n"
            f"  {self.insert_where(capture, 'D', 'OLD', f'NOT ({same})')};\n"
            f"  {self.insert_where(capture, 'I', 'NEW', f'NOT ({same})')};\n"
            f"  {self.insert_where(capture, 'U', 'NEW', same)};\nEND",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {table}\nBEGIN\n"
            f"  {self.insert(capture, 'D', self.row_key(capture, 'OLD'))};\nEND",
        ]


class _SQLServer(_Writer):
    """SQL Server 2016+ (FOR JSON): statement-level AFTER triggers over `inserted` and
    `deleted`. An update is matched by key: a key in both is a U, a key only in `deleted` a
    D, one only in `inserted` an I. Objects are dropped and created again (CREATE TRIGGER
    must start its own batch, which each statement here is)."""

    name = "mssql"

    def row_key(self, capture: Capture, row: str) -> str:
        # FOR JSON PATH nests on dots in an alias: a key column named `a.b` comes out nested.
        columns = ", ".join(f"{row}.{self.q(k)} AS {self.q(k)}" for k in capture.key)
        return f"(SELECT {columns} FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)"

    def matched(self, capture: Capture, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{self.q(k)} = {b}.{self.q(k)}" for k in capture.key)

    def select(self, capture: Capture, op: str, source: str, where: str = "") -> str:
        columns = ", ".join(self.q(c) for c in ("resource", "op", "row_key"))
        alias = source[0]
        return (
            f"  INSERT INTO {self.outbox(capture)} ({columns})\n"
            f"  SELECT {_literal(capture.resource)}, '{op}', {self.row_key(capture, alias)}\n"
            f"  FROM {source} AS {alias}{where};\n"
        )

    def unmatched(self, capture: Capture, negate: str, own: str, other: str) -> str:
        match = self.matched(capture, own[0], other[0])
        return f" WHERE {negate}EXISTS (SELECT 1 FROM {other} AS {other[0]} WHERE {match})"

    def object_text(self, ref: str) -> str:
        return "N" + _literal(ref)

    def create_outbox(self, ref: TableRef) -> list[str]:
        table = self.d.table(ref)
        types = ("BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY", "VARCHAR(64) NOT NULL",
                 "CHAR(1) NOT NULL", "NVARCHAR(MAX) NOT NULL",
                 "DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME()")  # fmt: skip
        head = f"IF OBJECT_ID({self.object_text(table)}, N'U') IS NULL\nCREATE TABLE"
        return [self.outbox_table(ref, types, head)]

    def drop_outbox(self, ref: TableRef) -> list[str]:
        table = self.d.table(ref)
        return [f"IF OBJECT_ID({self.object_text(table)}, N'U') IS NOT NULL\nDROP TABLE {table}"]

    def create_triggers(self, capture: Capture) -> list[str]:
        table = self.d.table(capture.table)
        ins, upd, dele = (self.scoped(capture, n) for n in self.names(capture))
        head = "AS\nBEGIN\n  SET NOCOUNT ON;\n"
        only_old = self.unmatched(capture, "NOT ", "deleted", "inserted")
        only_new = self.unmatched(capture, "NOT ", "inserted", "deleted")
        both = self.unmatched(capture, "", "inserted", "deleted")
        return [
            *self.drop_triggers(capture),
            f"CREATE TRIGGER {ins} ON {table} AFTER INSERT\n{head}"
            f"{self.select(capture, 'I', 'inserted')}END",
            f"CREATE TRIGGER {upd} ON {table} AFTER UPDATE\n{head}"
            + self.select(capture, "D", "deleted", only_old)
            + self.select(capture, "I", "inserted", only_new)
            + self.select(capture, "U", "inserted", both)
            + "END",
            f"CREATE TRIGGER {dele} ON {table} AFTER DELETE\n{head}"
            f"{self.select(capture, 'D', 'deleted')}END",
        ]

    def drop_triggers(self, capture: Capture) -> list[str]:
        return [
            f"IF OBJECT_ID({self.object_text(name)}, N'TR') IS NOT NULL\nDROP TRIGGER {name}"
            for name in (self.scoped(capture, n) for n in self.names(capture))
        ]


def _plsql_ignoring(statement: str, sqlcode: int) -> str:
    """An Oracle block running `statement`, an error `sqlcode` (it does not exist) ignored."""
    return (
        f"BEGIN\n  EXECUTE IMMEDIATE {_literal(statement)};\n"
        f"EXCEPTION\n  WHEN OTHERS THEN\n    IF SQLCODE != {sqlcode} THEN\n      RAISE;\n"
        "    END IF;\nEND;"
    )


class _Oracle(_Writer):
    """Oracle 12.2+ (JSON_OBJECT, identity columns): row triggers made with CREATE OR
    REPLACE; the outbox made and dropped in blocks that tolerate it being there (or not)."""

    name = "oracle"

    def row_key(self, capture: Capture, row: str) -> str:
        return f"JSON_OBJECT({self.pairs(capture, lambda k: f'{row}.{self.q(k)}', ' VALUE ')})"

    def same_key(self, capture: Capture, new: str, old: str) -> str:
        return " AND ".join(
            f"({new}.{q} = {old}.{q} OR ({new}.{q} IS NULL AND {old}.{q} IS NULL))"
            for q in (self.q(k) for k in capture.key)
        )

    def create_outbox(self, ref: TableRef) -> list[str]:
        types = ("NUMBER(19) GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                 "VARCHAR2(64) NOT NULL", "CHAR(1) NOT NULL", "CLOB NOT NULL",
                 "TIMESTAMP(6) DEFAULT SYS_EXTRACT_UTC(SYSTIMESTAMP) NOT NULL")  # fmt: skip
        create = self.outbox_table(ref, types)
        return [_plsql_ignoring(create, -955)]  # ORA-00955: name is already used

    def drop_outbox(self, ref: TableRef) -> list[str]:
        return [_plsql_ignoring(f"DROP TABLE {self.d.table(ref)}", -942)]

    def create_triggers(self, capture: Capture) -> list[str]:
        table = self.d.table(capture.table)
        ins, upd, dele = (self.scoped(capture, n) for n in self.names(capture))
        return [
            f"CREATE OR REPLACE TRIGGER {ins}\nAFTER INSERT ON {table}\nFOR EACH ROW\nBEGIN\n"
            f"  {self.insert(capture, 'I', self.row_key(capture, ':NEW'))};\nEND;",
            f"CREATE OR REPLACE TRIGGER {upd}\nAFTER UPDATE ON {table}\nFOR EACH ROW\nBEGIN\n"
            f"  {self.row_update(capture, ':NEW', ':OLD')}\nEND;",
            f"CREATE OR REPLACE TRIGGER {dele}\nAFTER DELETE ON {table}\nFOR EACH ROW\nBEGIN\n"
            f"  {self.insert(capture, 'D', self.row_key(capture, ':OLD'))};\nEND;",
        ]

    def drop_triggers(self, capture: Capture) -> list[str]:
        return [
            _plsql_ignoring(f"DROP TRIGGER {self.scoped(capture, n)}", -4080)
            for n in self.names(capture)
        ]


def _db2_ignoring(statement: str, sqlstate: str) -> str:
    """A Db2 compound statement running `statement`, SQLSTATE `sqlstate` ignored."""
    return (
        f"BEGIN\n  DECLARE CONTINUE HANDLER FOR SQLSTATE '{sqlstate}' BEGIN END;\n"
        f"  EXECUTE IMMEDIATE {_literal(statement)};\nEND"
    )


class _Db2(_Writer):
    """Db2 for LUW 11.1.4+ (JSON_OBJECT): row triggers made with CREATE OR REPLACE; the
    outbox made and dropped in compound statements that tolerate it being there (or not)."""

    name = "db2"

    def row_key(self, capture: Capture, row: str) -> str:
        pairs = ", ".join(f"KEY {_literal(k)} VALUE {row}.{self.q(k)}" for k in capture.key)
        return f"JSON_OBJECT({pairs})"

    def same_key(self, capture: Capture, new: str, old: str) -> str:
        return " AND ".join(
            f"({new}.{q} = {old}.{q} OR ({new}.{q} IS NULL AND {old}.{q} IS NULL))"
            for q in (self.q(k) for k in capture.key)
        )

    def create_outbox(self, ref: TableRef) -> list[str]:
        types = ("BIGINT NOT NULL GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                 "VARCHAR(64) NOT NULL", "CHAR(1) NOT NULL", "CLOB(1M) NOT NULL",
                 "TIMESTAMP(6) NOT NULL DEFAULT CURRENT TIMESTAMP")  # fmt: skip
        create = self.outbox_table(ref, types)
        return [_db2_ignoring(create, "42710")]  # 42710: the object already exists

    def drop_outbox(self, ref: TableRef) -> list[str]:
        return [_db2_ignoring(f"DROP TABLE {self.d.table(ref)}", "42704")]

    def create_triggers(self, capture: Capture) -> list[str]:
        table = self.d.table(capture.table)
        ins, upd, dele = (self.scoped(capture, n) for n in self.names(capture))
        return [
            f"CREATE OR REPLACE TRIGGER {ins}\nAFTER INSERT ON {table}\n"
            "REFERENCING NEW AS N\nFOR EACH ROW\n"
            f"{self.insert(capture, 'I', self.row_key(capture, 'N'))}",
            f"CREATE OR REPLACE TRIGGER {upd}\nAFTER UPDATE ON {table}\n"
            "REFERENCING NEW AS N OLD AS O\nFOR EACH ROW\n"
            f"BEGIN ATOMIC\n  {self.row_update(capture, 'N', 'O')}\nEND",
            f"CREATE OR REPLACE TRIGGER {dele}\nAFTER DELETE ON {table}\n"
            "REFERENCING OLD AS O\nFOR EACH ROW\n"
            f"{self.insert(capture, 'D', self.row_key(capture, 'O'))}",
        ]

    def drop_triggers(self, capture: Capture) -> list[str]:
        return [
            _db2_ignoring(f"DROP TRIGGER {self.scoped(capture, n)}", "42704")
            for n in self.names(capture)
        ]
