# Reading each DBMS's own catalog for the sample suite: SQLite pragmas, PostgreSQL's
# information_schema and pg_catalog, MariaDB's information_schema. Each reader returns every
# table and view of the database with its columns, primary key, foreign-key columns, unique
# constraints and whether triggers or rules may change a written row.
from __future__ import annotations

from typing import Any

from samplecatalog import Column, Found, Query, kind_of, scale_of


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ansi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_unique(query: Query, table: str) -> list[tuple[str, ...]]:
    sets = []
    for index in query(f"PRAGMA index_list({_ansi(table)})"):
        if index[2] and index[3] != "pk":
            sets.append(tuple(row[2] for row in query(f"PRAGMA index_info({_ansi(index[1])})")))
    return sets


def sqlite_catalog(query: Query) -> list[Found]:
    out = []
    master = "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
    for name, kind in query(master + "AND name NOT LIKE 'sqlite%' ORDER BY name"):
        info = query(f"PRAGMA table_info({_ansi(name)})")
        foreign = {row[3] for row in query(f"PRAGMA foreign_key_list({_ansi(name)})")}
        columns = [Column(c[1], kind_of(c[2]), scale_of(c[2]), c[1] in foreign, c[2]) for c in info]
        key = [c[1] for c in sorted(info, key=lambda c: int(c[5])) if c[5]]
        triggers = query(
            f"SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = {_literal(name)}"
        )
        unique = _sqlite_unique(query, name)
        out.append(Found(name, kind == "view", columns, key, bool(triggers), unique))
    return out


_PG_INDEX = """
SELECT i.indexrelid, a.attname FROM pg_index i JOIN pg_attribute a
  ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = {rel}::regclass AND {which}
ORDER BY i.indexrelid, array_position(i.indkey::int2[], a.attnum)
"""
_PG_FOREIGN = """
SELECT a.attname FROM pg_constraint c JOIN pg_attribute a
  ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
WHERE c.contype = 'f' AND c.conrelid = {rel}::regclass
"""
_PG_REWRITES = """
SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = {rel}::regclass AND NOT tgisinternal)
     + (SELECT count(*) FROM pg_rules WHERE schemaname = 'public' AND tablename = {name})
"""
_PG_INSERT_RULES = """
SELECT count(*) FROM pg_rewrite WHERE ev_class = {rel}::regclass AND ev_type = '3' AND is_instead
"""
_PG_COLUMNS = """
SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale
FROM information_schema.columns WHERE table_schema = 'public' AND table_name = {name}
ORDER BY ordinal_position
"""


def _pg_declared(data_type: str, udt: str, precision: Any, scale: Any) -> str:
    if data_type in ("numeric", "decimal") and precision is not None:
        return f"numeric({precision},{scale})"
    return udt if data_type in ("USER-DEFINED", "ARRAY") else data_type


def _grouped(rows: list[tuple[Any, ...]]) -> list[tuple[str, ...]]:
    """(group, name) rows, in order, as one tuple of names per group."""
    groups: dict[Any, list[str]] = {}
    for group, name in rows:
        groups.setdefault(group, []).append(name)
    return [tuple(names) for names in groups.values()]


def _pg_columns(query: Query, name: str, foreign: set[str]) -> list[Column]:
    columns = []
    for column, data_type, udt, precision, scale in query(_PG_COLUMNS.format(name=name)):
        declared = _pg_declared(data_type, udt, precision, scale)
        kind = kind_of(declared)
        digits = scale if kind == "decimal" else None
        columns.append(Column(column, kind, digits, column in foreign, declared))
    return columns


def postgres_catalog(query: Query) -> list[Found]:
    out = []
    tables = "SELECT table_name, table_type FROM information_schema.tables "
    for name, kind in query(tables + "WHERE table_schema = 'public' ORDER BY table_name"):
        rel, lit = _literal(f"public.{_ansi(name)}"), _literal(name)
        foreign = {row[0] for row in query(_PG_FOREIGN.format(rel=rel))}
        keys = _grouped(query(_PG_INDEX.format(rel=rel, which="i.indisprimary")))
        unique = _grouped(
            query(_PG_INDEX.format(rel=rel, which="i.indisunique AND NOT i.indisprimary"))
        )
        rewrites = query(_PG_REWRITES.format(rel=rel, name=lit))[0][0]
        columns = _pg_columns(query, lit, foreign)
        key = list(keys[0]) if keys else []
        rules = query(_PG_INSERT_RULES.format(rel=rel))[0][0]
        out.append(Found(name, kind == "VIEW", columns, key, bool(rewrites), unique, bool(rules)))
    return out


_MARIADB_COLUMNS = """
SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, NUMERIC_SCALE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} ORDER BY ORDINAL_POSITION
"""
_MARIADB_INDEXES = """
SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} AND NON_UNIQUE = 0
ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX
"""
_MARIADB_FOREIGN = """
SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} AND REFERENCED_TABLE_NAME IS NOT NULL
"""
_MARIADB_TRIGGERS = """
SELECT 1 FROM information_schema.TRIGGERS
WHERE EVENT_OBJECT_SCHEMA = {schema} AND EVENT_OBJECT_TABLE = {name}
"""


def _mariadb_columns(query: Query, schema: str, name: str, foreign: set[str]) -> list[Column]:
    columns = []
    for column, column_type, data_type, scale in query(
        _MARIADB_COLUMNS.format(schema=schema, name=name)
    ):
        kind = "timestamptz" if data_type == "timestamp" else kind_of(column_type)
        digits = int(scale) if kind == "decimal" else None
        columns.append(Column(column, kind, digits, column in foreign, column_type))
    return columns


def mariadb_catalog(query: Query, database: str) -> list[Found]:
    out = []
    schema = _literal(database)
    tables = "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
    for name, kind in query(tables + f"WHERE TABLE_SCHEMA = {schema} ORDER BY TABLE_NAME"):
        lit = _literal(name)
        foreign = {r[0] for r in query(_MARIADB_FOREIGN.format(schema=schema, name=lit))}
        indexes = query(_MARIADB_INDEXES.format(schema=schema, name=lit))
        key = [column for index, column in indexes if index == "PRIMARY"]
        unique = _grouped([row for row in indexes if row[0] != "PRIMARY"])
        triggers = query(_MARIADB_TRIGGERS.format(schema=schema, name=lit))
        columns = _mariadb_columns(query, schema, lit, foreign)
        out.append(Found(name, kind == "VIEW", columns, key, bool(triggers), unique))
    return out
