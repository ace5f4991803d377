# A "legacy application" for the change-event tests: a separate process that knows nothing of
# Bridgehead and changes rows directly in its databases (sqlite3, or pyodbc for PostgreSQL and
# MariaDB), each change its own transaction: inserts, updates and deletes over a fixed set of
# keys, chosen by a seeded random walk. Run: python legacy_app.py SPEC.json; it writes
# SPEC.json's "done" file with how many changes each target made.
from __future__ import annotations

import json
import random
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

CREATE = "CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, note VARCHAR(40))"


def connect(target: dict[str, Any]) -> Any:
    if target["kind"] == "sqlite":
        db = sqlite3.connect(target["path"], isolation_level=None, timeout=30)
        db.execute("PRAGMA busy_timeout = 30000")
        return db
    import pyodbc  # noqa: PLC0415 - only the ODBC targets need it

    return pyodbc.connect(target["connection"], autocommit=True, timeout=30)


def change(target: dict[str, Any], changes: int, keys: int, seed: int) -> int:
    """Make `changes` changes over `keys` keys; how many were made."""
    db = connect(target)
    rng = random.Random(seed)  # noqa: S311 - a reproducible walk, not a secret
    present: set[int] = set()
    try:
        for n in range(1, changes + 1):
            key = rng.randrange(keys)
            if key not in present:
                db.execute("INSERT INTO items (id, version, note) VALUES (?, ?, ?)",
                           (key, n, f"made {n}"))  # fmt: skip
                present.add(key)
            elif rng.random() < 0.15:
                db.execute("DELETE FROM items WHERE id = ?", (key,))
                present.discard(key)
            else:
                db.execute("UPDATE items SET version = ?, note = ? WHERE id = ?",
                           (n, f"changed {n}", key))  # fmt: skip
    finally:
        db.close()
    return changes


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    made: dict[str, int] = {}

    def run(name: str, target: dict[str, Any], seed: int) -> None:
        made[name] = change(target, spec["changes"], spec["keys"], seed)

    threads = [
        threading.Thread(target=run, args=(name, target, seed))
        for seed, (name, target) in enumerate(spec["targets"].items())
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(spec["done"]).write_text(json.dumps(made))


if __name__ == "__main__":
    main(sys.argv[1])
