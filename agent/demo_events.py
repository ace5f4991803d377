"""The demo's change events: triggers on the sample database, a local webhook receiver that
prints each delivery the demo relay makes, and `bridgehead demo change`, which changes rows
the way the legacy application would (plain sqlite3, knowing nothing of Bridgehead).

The receiver checks every delivery's Standard Webhooks signature with the secret the demo
folder keeps (`webhook-secret.txt`, made once, 0600) and answers 401 to one that does not
verify, as a real subscriber must.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import secrets
import sqlite3
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bridgehead.adapters.types import TableRef
from bridgehead.agent.events.ddl import Capture, install_statements
from bridgehead.certs.keyfiles import write_private

CAPTURED = (
    Capture("customers", TableRef("customers"), ("id",)),
    Capture("orders", TableRef("orders"), ("id",)),
)
SECRET_FILE = "webhook-secret.txt"  # noqa: S105 - a file name


def install_triggers(database: Path) -> None:
    """What `bridgehead events install --yes` makes for customers and orders (idempotent)."""
    with sqlite3.connect(database) as db:
        for statement in install_statements("sqlite", CAPTURED):
            db.execute(statement)
    db.close()


def webhook_secret(folder: Path) -> str:
    """The demo's signing secret (`whsec_...`), made once."""
    path = folder / SECRET_FILE
    if not path.exists():
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        write_private(path, (secret + "\n").encode())
    return path.read_text().strip()


class LocalServer(ABC):
    """One of the demo's own HTTP servers on 127.0.0.1 (`routes` says what it serves)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._runner: web.AppRunner | None = None

    @abstractmethod
    def routes(self, app: web.Application) -> None: ...

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class WebhookReceiver(LocalServer):
    """A subscriber on 127.0.0.1: verifies each delivery and prints one line for it."""

    def __init__(self, secret: str, port: int, out: TextIO = sys.stdout) -> None:
        super().__init__(port)
        self.hook, self.out = Webhook(secret), out

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._take)

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.hook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            print("webhook: a delivery whose signature does not verify, refused", file=self.out,
                  flush=True)  # fmt: skip
            return web.Response(status=401)
        print(delivery_line(request.headers, orjson.loads(body)), file=self.out, flush=True)
        return web.Response(status=204)


def delivery_line(headers: Mapping[str, str], data: object) -> str:
    """One printed line for a delivery: what changed, which row, and the row's data."""
    kind = headers.get("ce-type", "?").removeprefix("bridgehead.row.")
    resource = headers.get("ce-source", "").rpartition("/")[2]
    row = f"{resource}/{headers.get('ce-subject', '?')}"
    sequence = headers.get("ce-sequence", "?")
    return f"webhook: {kind:7} {row} (sequence {sequence}) {orjson.dumps(data).decode()}"


def change_rows(database: Path, count: int, out: TextIO = sys.stdout) -> None:
    """`bridgehead demo change`: `count` direct changes, as the legacy application makes them:
    balances updated, an order placed, an order cancelled and deleted."""
    if not database.exists():
        raise FileNotFoundError(f"{database} does not exist; run `bridgehead demo` first")
    rng = random.Random()  # noqa: S311 - sample changes, not secrets
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
    with sqlite3.connect(database) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM customers")]
        for _ in range(count):
            customer = rng.choice(ids)
            cents = rng.randint(-5000, 5000)
            db.execute("UPDATE customers SET balance = round(balance + ?, 2) WHERE id = ?",
                       (cents / 100, customer))  # fmt: skip
            print(f"changed customers/{customer}: balance {cents / 100:+.2f}", file=out)
        order = db.execute(
            "INSERT INTO orders (customer_id, status, total, placed_at, reference) "
            "VALUES (?, 'open', ?, ?, ?) RETURNING id",
            (rng.choice(ids), f"{rng.randint(100, 99_999) / 100:.2f}", now,
             str(uuid.uuid4())),
        ).fetchone()[0]  # fmt: skip
        print(f"placed orders/{order}", file=out)
        old = db.execute("SELECT max(id) FROM orders WHERE id < ? AND id NOT IN "
                         "(SELECT order_id FROM order_lines)", (order,)).fetchone()[0]  # fmt: skip
        if old is not None:
            db.execute("DELETE FROM orders WHERE id = ?", (old,))
            print(f"deleted orders/{old}", file=out)
    db.close()
