# Writes for the sample suite's round trip on a copy of each database: a key no row has
# (foreign-key values kept valid), a copy of an existing row that its unique constraints
# accept, one column to patch, and what the database stored compared with what was sent.
from __future__ import annotations

import itertools
from typing import Any

from samplecatalog import Column, Relation
from sampledbs import SampleDb
from samplereads import reference, reference_keys
from samplevalues import stored_as_sent


async def fresh_key(db: SampleDb, r: Relation) -> dict[str, Any]:
    """A key no row has: the sample's largest + 1000 for an integer column outside a
    foreign key; for a
    composite key, values its foreign keys already hold, in a combination not yet used."""
    q, table = db.dialect.quote, db.dialect.quote(r.name)
    choices: list[list[str]] = []
    for name in r.key:
        column = r.column(name)
        assert column.kind == "integer", f"{db.name} {r.resource}: no rule for a {column.kind} key"
        if column.foreign and len(r.key) > 1:
            found = await reference(
                db, f"SELECT DISTINCT {q(name)} FROM {table} ORDER BY 1 LIMIT 50"
            )
            choices.append([str(row[0]) for row in found])
        else:
            # Above the sample's own keys, ignoring the extreme ones other suites insert
            # (a fuzzer's 2147483647), so that the key fits every integer column.
            found = await reference(db, f"SELECT {q(name)} FROM {table}")
            used = {int(row[0]) for row in found}
            top = max((k for k in used if k < 2**30), default=0) + 1000
            choices.append([str(next(k for k in range(top, top + 10**6) if k not in used))])
    taken = set(await reference_keys(db, r, None, False))
    free = next((c for c in itertools.product(*choices) if c not in taken), None)
    assert free is not None, f"{db.name} {r.resource}: no unused key among {choices}"
    return {name: int(value) for name, value in zip(r.key, free, strict=True)}


def patch_value(r: Relation, row: dict[str, Any]) -> tuple[Column, Any] | None:
    """A new value for one column outside the key and foreign keys that nothing else sets."""
    order = {"text": 0, "decimal": 1, "integer": 2, "timestamp": 3}
    candidates = [
        c
        for c in r.columns
        if c.kind in order
        and c.name not in r.key
        and not c.foreign
        and not (r.rewritten and c.kind == "timestamp")
    ]
    if not candidates:
        return None
    column = min(candidates, key=lambda c: order[c.kind])
    values: dict[str, tuple[Any, Any]] = {
        "text": ("Zoë", "Ωmé"),
        "decimal": tuple(f"{n}.{'0' * (column.scale or 0)}".rstrip(".") for n in (7, 8)),
        "integer": (7, 8),
        "timestamp": ("2001-02-03T04:05:06", "2002-03-04T05:06:07"),
    }
    first, second = values[column.kind]
    return column, second if row.get(column.name) == first else first


def unique_copy(r: Relation, row: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """row under the new key, changed where a unique constraint would refuse a copy: a year
    2099 in timestamps and dates, a '~' leading text; None if such a constraint holds only
    foreign-key columns (no copy can satisfy it without new parent rows)."""
    copy = {**row, **new}
    for columns in r.unique:
        if set(columns) & set(r.key) or any(row.get(c) is None for c in columns):
            continue
        free = [r.column(c) for c in columns if not r.column(c).foreign]
        changeable = [c for c in free if c.kind in ("timestamp", "timestamptz", "date", "text")]
        if not changeable:
            return None
        column = changeable[0]
        value = str(row[column.name])
        copy[column.name] = "~" + value[1:] if column.kind == "text" else "2099" + value[4:]
    return copy


def sent_problems(r: Relation, sent: dict[str, Any], stored: tuple[Any, ...]) -> list[str]:
    """Columns whose stored value is not the value sent (timestamps of rewritten tables aside)."""
    failures = []
    for column, text in zip(r.columns, stored, strict=True):
        if (r.rewritten and column.kind == "timestamp") or column.name not in sent:
            continue
        if not stored_as_sent(column, sent[column.name], text):
            sent_value = sent[column.name]
            failures.append(f"{r.resource}.{column.name}: sent {sent_value!r}, stored {text!r}")
    return failures
