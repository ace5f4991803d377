# The data every contender reads: a `customers` table (6 columns) in one SQLite file and in
# one PostgreSQL database, the same rows in both; `w`, an empty PostgreSQL table for the
# writes; and stream_pg.py's 6-column `big` table for the NDJSON stream.
from __future__ import annotations

import sqlite3
from pathlib import Path

import pyodbc

CUSTOMERS_SQL = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, "
    "balance DECIMAL(12,2), updated_at TEXT NOT NULL, note TEXT)"
)
LOOKUP = "SELECT id, name, email, balance, updated_at, note FROM customers WHERE id = ?"
WRITES_SQL = (
    "CREATE TABLE w (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(12,2), note TEXT)"
)
INSERT = "INSERT INTO w (name, amount, note) VALUES (?, ?, ?)"


def customer(i: int) -> tuple[int, str, str, str, str, str]:
    stamp = f"2024-01-01T00:{i // 60 % 60:02}:{i % 60:02}"
    return (i, f"name {i}", f"c{i}@example.com", f"{i / 100:.2f}", stamp, f"note for {i}")


def sqlite_customers(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute(CUSTOMERS_SQL)
    db.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", map(customer, range(1, rows + 1))
    )
    db.commit()
    db.close()


def pg_tables(connection_string: str, rows: int) -> None:
    db = pyodbc.connect(connection_string, autocommit=True)
    db.execute(CUSTOMERS_SQL.replace("updated_at TEXT", "updated_at TIMESTAMP"))
    db.execute(
        "INSERT INTO customers SELECT i, 'name ' || i, 'c' || i || '@example.com', i / 100.0, "
        "TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '1 second', 'note for ' || i "
        f"FROM generate_series(1, {rows}) i"
    )
    db.execute(WRITES_SQL)
    db.execute("VACUUM ANALYZE customers")
    db.close()


def write_row(i: int) -> dict[str, str]:
    return {"name": f"row {i}", "amount": f"{i % 10000 / 100:.2f}", "note": "written by bench"}
