"""How records of input (an import job's, a bulk load's) change a resource, chunk by chunk,
in the caller's transactions.

Rules:
- Each record is converted by the target's column types (CSV text as a filter value would
  be, NDJSON values as a request body's); a record that does not convert, or that lacks a
  key column, is rejected with its line number and the reason, and nothing of it is written.
- The chunk's existing rows are read in one statement by key. A record equal to its row is
  `unchanged` and not written at all, so the database's triggers and `updated_at` columns
  do not fire; a changed one is updated in the columns that differ only; a new one is
  inserted. `mode: insert` never changes a row: a different existing row is a reject.
- `mirror` remembers every key the input held (on disk, in the state folder, so memory stays
  bounded), and once the whole input is applied deletes the target's rows within `scope`
  whose keys it did not hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from bridgehead.adapters.base import Transaction
from bridgehead.adapters.sql import And, Condition, Delete, Insert, OrderBy, Select, Update
from bridgehead.agent.api.filters import after, parse_filter
from bridgehead.agent.api.reads import encode_rows, key_condition, rows_by_key
from bridgehead.agent.api.records import Record, freeze_all
from bridgehead.agent.catalog import Resource
from bridgehead.agent.values import from_json, from_text
from bridgehead.common.errors import ApiError

MAX_REJECTS_KEPT = 100
Key = tuple[Any, ...]
Mode = Literal["insert", "upsert", "mirror"]


class ImportRefused(Exception):
    """The import cannot run as configured; the message says what to change."""


@dataclass
class Tally:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS_KEPT:
            self.rejects.append({"line": line, "reason": reason})

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "deleted": self.deleted, "rejected": self.rejected,
            "rejects": self.rejects,
        }  # fmt: skip

    @classmethod
    def of(cls, counts: dict[str, Any]) -> Tally:
        return cls(**{k: v for k, v in counts.items() if k in cls.__dataclass_fields__})


class SeenKeys:
    """The keys an input held (mirror), in a SQLite file beside the job's state."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key BLOB PRIMARY KEY) WITHOUT ROWID")

    def add(self, keys: Sequence[Key]) -> None:
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)",
                                 [(_blob(k),) for k in keys])  # fmt: skip

    def missing(self, keys: Sequence[Key]) -> list[Key]:
        found = {
            row[0]
            for row in self._db.execute(
                f"SELECT key FROM seen WHERE key IN ({','.join('?' * len(keys))})",
                [_blob(k) for k in keys],
            )
        }
        return [k for k in keys if _blob(k) not in found]

    def drop(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)


def _blob(key: Key) -> bytes:
    return orjson.dumps(freeze_all(key))


class Applier:
    def __init__(
        self, resource: Resource, mode: Mode, scope: str | None = None, *, textual: bool
    ) -> None:
        self.resource, self.mode, self.textual = resource, mode, textual
        needed = {"insert"} | ({"update"} if mode != "insert" else set())
        needed |= {"delete"} if mode == "mirror" else set()
        missing = needed - resource.operations
        if not resource.key:
            raise ImportRefused(f"resource {resource.name!r} has no key; give it key: to import")
        if missing:
            raise ImportRefused(
                f"resource {resource.name!r} does not allow {', '.join(sorted(missing))}; add "
                f"them to its operations: for an import in mode {mode}"
            )
        self.scope = _scope(resource, scope)

    def convert(self, record: Record) -> dict[str, Any] | str:
        """The record's canonical values, or why it is rejected."""
        if record.values is None:
            return record.error or "unreadable"
        values: dict[str, Any] = {}
        for name, value in record.values.items():
            column = self.resource.column(name)
            if column is None:
                known = ", ".join(c.name for c in self.resource.columns)
                return f"unknown column {name!r} (columns of {self.resource.name}: {known})"
            try:
                if value is None:
                    values[name] = None
                elif self.textual:
                    values[name] = from_text(column.type, str(value))
                else:
                    values[name] = from_json(column.type, value)
            except ValueError as exc:
                return f"column {name!r}: {exc}"
        for column in self.resource.key:
            if values.get(column.name) is None:
                return f"no value for the key column {column.name!r}"
        return values

    def key_of(self, values: dict[str, Any]) -> Key:
        return tuple(values[c.name] for c in self.resource.key)

    async def apply(
        self, tx: Transaction, rows: Sequence[tuple[Record, dict[str, Any]]], tally: Tally
    ) -> None:
        """Write one chunk of converted records in `tx`."""
        if not rows:
            return
        current = await self._existing(tx, [self.key_of(v) for _, v in rows])
        new: list[tuple[Record, dict[str, Any]]] = []
        for record, values in rows:
            key = self.key_of(values)
            row = current.get(key)
            if row is None:
                new.append((record, values))
                current[key] = dict(values)
                continue
            changed = {n: v for n, v in values.items() if not _same(row.get(n), v)}
            if not changed:
                tally.unchanged += 1
            elif self.mode == "insert":
                tally.reject(record.line, "a different row with this key exists (mode: insert "
                             f"changes no rows): {', '.join(sorted(changed))} differ")  # fmt: skip
            else:
                where = key_condition(self.resource, dict(zip(self._key_names, key, strict=True)))
                await tx.update(Update(self.resource.table.ref, tuple(changed),
                                       tuple(changed.values()), where))  # fmt: skip
                tally.updated += 1
                row.update(changed)
        await self._insert(tx, new)
        tally.inserted += len(new)

    @property
    def _key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.resource.key)

    async def _existing(self, tx: Transaction, keys: list[Key]) -> dict[Key, dict[str, Any]]:
        names = self._key_names
        wanted = [dict(zip(names, key, strict=True)) for key in dict.fromkeys(keys)]
        rows = await rows_by_key(tx, self.resource, wanted)
        return {tuple(r[n] for n in names): r for r in rows}

    async def _insert(self, tx: Transaction, rows: list[tuple[Record, dict[str, Any]]]) -> None:
        """The chunk's new rows, sent together; each must count one row inserted."""
        table = self.resource.table.ref
        statements = [Insert(table, tuple(values), tuple(values.values())) for _, values in rows]
        for (record, _), counted in zip(rows, await tx.insert_all(statements), strict=True):
            if counted not in (1, -1):
                raise ApiError(f"line {record.line}: the database reported {counted} rows "
                               "inserted, not 1; nothing of this chunk was written")  # fmt: skip

    async def page_of_keys(
        self, tx: Transaction, after_key: list[Any] | None, limit: int
    ) -> tuple[list[Key], list[Any] | None]:
        """One page of the target's keys within scope, in key order after `after_key`, and
        where the next page starts (None: this was the last)."""
        order = tuple(OrderBy(n) for n in self._key_names)
        beyond = after(order, after_key) if after_key else None
        terms = [t for t in (self.scope, beyond) if t is not None]
        select = Select(
            self.resource.table.ref, self._key_names, order=order, limit=limit,
            where=And(tuple(terms)) if terms else None,
        )  # fmt: skip
        raw = await tx.select(select)
        rows = encode_rows(self.resource, self.resource.key, raw)
        keys = [tuple(r[n] for n in self._key_names) for r in rows]
        return keys, (list(raw[-1]) if len(raw) == limit else None)

    async def delete(self, tx: Transaction, keys: Sequence[Key]) -> None:
        for key in keys:
            where = key_condition(self.resource, dict(zip(self._key_names, key, strict=True)))
            await tx.delete(Delete(self.resource.table.ref, where))


def _scope(resource: Resource, scope: str | None) -> Condition | None:
    if not scope:
        return None
    from urllib.parse import parse_qsl  # noqa: PLC0415 - one use

    try:
        terms = [parse_filter(resource, name, value) for name, value in parse_qsl(scope)]
    except Exception as exc:  # a BadRequest names the column and the operator
        raise ImportRefused(f"scope: {scope!r}: {exc}") from None
    if not terms:
        raise ImportRefused(f"scope: {scope!r} holds no filter (write it like country=eq.GB)")
    return terms[0] if len(terms) == 1 else And(tuple(terms))


def _same(stored: Any, given: Any) -> bool:
    if stored == given:
        return True
    if stored is None or given is None:
        return False
    return str(stored) == str(given)
