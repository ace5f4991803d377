# A column whose type Bridgehead does not know is served as text (bytes as base64), never
# a crash, on the embedded SQLite adapter.
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE shapes (id INTEGER PRIMARY KEY, shape WIDGET, blob_ish GEOMETRY)")
        db.execute(
            "INSERT INTO shapes VALUES (1, 'circle', X'00FF'), (2, 42, 1.5), (3, NULL, NULL)"
        )
    db.close()


async def test_unknown_types_are_served_as_text(tmp_path: Path, run_agent: Any) -> None:
    """WIDGET and GEOMETRY columns come back as strings (base64 for bytes) and null."""
    await asyncio.to_thread(make_db, tmp_path / "shapes.db")
    api = await run_agent(
        {"db": {"sqlite": str(tmp_path / "shapes.db")}},
        {"shapes": {"source": "db", "table": "shapes"}},
    )
    status, _, body = await api.get("/v1/shapes")
    assert status == 200, body
    assert body["items"] == [
        {"id": 1, "shape": "circle", "blob_ish": "AP8="},
        {"id": 2, "shape": "42", "blob_ish": "1.5"},
        {"id": 3, "shape": None, "blob_ish": None},
    ]
