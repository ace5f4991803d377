"""`bridgehead demo`: a sample legacy database, a config and an API key, ready to curl.

Everything lives in one folder (default `./bridgehead-demo`) and is made only if missing,
so a second run serves the same data with the same key. The data is deterministic and
deliberately awkward: DECIMAL money, timestamps, NULLs, a composite key, non-ASCII names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import secrets
import sqlite3
import uuid
from pathlib import Path

from agent.config import AgentConfig, load_config
from certs.keyfiles import ensure_private_dir, write_private

CUSTOMERS, ORDERS = 2000, 5000
FIRST = ["Zoë", "José", "Øyvind", "Łucja", "Müller", "Ἀλέξανδρος", "Ярослава", "さくら", "Siobhán",
         "François", "Ana", "Ngọc", "Björk", "Çağla", "Dvořák", "Wei"]  # fmt: skip
LAST = ["García", "Østergaard", "Nguyễn", "Kowalski", "O'Brien", "Straße", "Şahin", "田中",
        "Smith", "Ibáñez", "Papadopoulos", "Petrović"]  # fmt: skip
COUNTRIES = ["DE", "FR", "ES", "NO", "PL", "JP", "IE", "VN", "TR", "GB", None]
PRODUCTS = ["Widget", "Gadget", "Sprocket", "Flange", "Gizmo", "Doohickey", "Cog", "Valve"]
STATUSES = ["open", "paid", "shipped", "cancelled"]

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    country CHAR(2),
    balance DECIMAL(12,2) NOT NULL,
    vip BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL,
    total DECIMAL(12,2) NOT NULL,
    placed_at TIMESTAMP NOT NULL,
    shipped_on DATE,
    reference UUID NOT NULL
);
CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    line_no INTEGER NOT NULL,
    product TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
"""

CONFIG = """\
# Bridgehead demo agent: a sample SQLite database behind the local API.
sources:
  sample:
    sqlite: sample.db

resources:
  customers:
    source: sample
    table: customers
    key: [id]
  orders:
    source: sample
    table: orders
    key: [id]
  order_lines:
    source: sample
    table: order_lines
    key: [order_id, line_no]

auth:
  api_keys:
    - name: demo
      key_sha256: "{digest}"
      scopes: [customers:read, orders:read, order_lines:read]

listen: 127.0.0.1:{port}
admin: null
"""


def build_database(path: Path) -> None:
    """Create the sample database at `path`, atomically (a half-built file is never left)."""
    rng = random.Random(7)  # noqa: S311 - sample data, not security
    partial = path.with_suffix(".building")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?)", _customers(rng))
        orders = list(_orders(rng))
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?)", orders)
        db.executemany("INSERT INTO order_lines VALUES (?,?,?,?,?)", _lines(rng, len(orders)))
    db.close()
    partial.replace(path)


def _customers(rng: random.Random) -> list[tuple[object, ...]]:
    start = dt.datetime(2015, 1, 1)
    rows: list[tuple[object, ...]] = []
    for i in range(1, CUSTOMERS + 1):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = None if i % 7 == 0 else f"customer{i}@example.com"
        balance = f"{rng.randint(-50_000, 5_000_000) / 100:.2f}"
        created = start + dt.timedelta(seconds=rng.randint(0, 300_000_000))
        rows.append((i, name, email, rng.choice(COUNTRIES), balance, i % 11 == 0,
                     created.isoformat(" ")))  # fmt: skip
    return rows


def _orders(rng: random.Random) -> list[tuple[object, ...]]:
    start = dt.datetime(2020, 1, 1)
    rows: list[tuple[object, ...]] = []
    for i in range(1, ORDERS + 1):
        placed = start + dt.timedelta(seconds=rng.randint(0, 150_000_000), microseconds=i)
        status = rng.choice(STATUSES)
        shipped = (placed.date() + dt.timedelta(days=rng.randint(1, 9))).isoformat()
        reference = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        total = f"{rng.randint(100, 2_000_000) / 100:.2f}"
        rows.append((i, rng.randint(1, CUSTOMERS), status, total, placed.isoformat(" "),
                     shipped if status == "shipped" else None, reference))  # fmt: skip
    return rows


def _lines(rng: random.Random, orders: int) -> list[tuple[object, ...]]:
    return [
        (
            order,
            line,
            rng.choice(PRODUCTS),
            rng.randint(1, 40),
            f"{rng.randint(50, 99_999) / 100:.2f}",
        )
        for order in range(1, orders + 1)
        for line in range(1, rng.randint(1, 4) + 1)
    ]


def prepare(folder: Path, port: int) -> tuple[AgentConfig, str]:
    """Make what is missing in `folder`; the config to run and the text that says what to try."""
    folder = ensure_private_dir(folder.resolve())
    database = folder / "sample.db"
    if not database.exists():
        build_database(database)
    key_file = folder / "api-key.txt"
    if not key_file.exists():
        write_private(key_file, (secrets.token_urlsafe(32) + "\n").encode())
    key = key_file.read_text().strip()
    config_file = folder / "agent.yaml"
    digest = hashlib.sha256(key.encode()).hexdigest()
    config_file.write_text(CONFIG.format(digest=digest, port=port), encoding="utf-8")
    announce = "\n".join([
        "Bridgehead demo is running.",
        f"  folder:   {folder}  (agent.yaml, sample.db, api-key.txt)",
        "  API:      {url}/v1/customers   (also /v1/orders, /v1/order_lines)",
        "Try:",
        f"  curl -s -H 'Authorization: Bearer {key}' "
        "'{url}/v1/customers?limit=3&order=balance.desc'",
        "Press Ctrl-C to stop.",
    ])  # fmt: skip
    return load_config(config_file), announce
