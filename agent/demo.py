"""`bridgehead demo`: a sample legacy database, a config and an API key, ready to curl.

Everything lives in one folder (default `./bridgehead-demo`) and is made only if missing,
so a second run serves the same data with the same key. The data is deterministic and
deliberately awkward: DECIMAL money, timestamps, NULLs, a composite key, non-ASCII names.
The relay and the agent get their identities the way a deployment does: the relay's CA as
`bridgehead-relay ca init` makes it, and the agent enrolled with a one-time token at every
start (`token create`, then `bridgehead enroll`, which adds the tunnel section). Customers
and orders emit change events (agent.demo_events): the relay delivers them to a local webhook
receiver that prints each one, and `bridgehead demo change` changes rows to watch them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import secrets
import socket
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config
from bridgehead.agent.demo_events import (
    LocalServer,
    WebhookReceiver,
    change_rows,
    install_triggers,
    webhook_secret,
)
from bridgehead.agent.enroll import enroll_command
from bridgehead.certs.keyfiles import ensure_private_dir, write_private
from bridgehead.certs.pki import (
    create_ca,
    issue_server_cert,
    write_key_pair,
)
from bridgehead.common import logs
from bridgehead.common.commands import serve
from bridgehead.common.config.base import HostPort
from bridgehead.common.runtime import Service
from bridgehead.relay.app import Relay
from bridgehead.relay.config import RelayConfig, load_relay_config
from bridgehead.relay.enrollment import create_token

CUSTOMERS, ORDERS = 2000, 5000
FIRST = ["Zoë", "José", "Øyvind", "Łucja", "Müller", "Ἀλέξανδρος", "Ярослава", "さくら", "Siobhán",
         "François", "Ana", "Ngọc", "Björk", "Çağla", "Dvořák", "Wei"]  # fmt: skip
LAST = ["García", "Østergaard", "Nguyễn", "Kowalski", "O'Brien", "Straße", "Şahin", "田中",
        "Smith", "Ibáñez", "Papadopoulos", "Petrović"]  # fmt: skip
COUNTRIES = ["DE", "FR", "ES", "NO", "PL", "JP", "IE", "VN", "TR", "GB", None]
PRODUCTS = ["Widget", "Gadget", "Sprocket", "Flange", "Gizmo", "Doohickey", "Cog", "Valve"]
STATUSES = ["open", "paid", "shipped", "cancelled"]
REFERENCE_COUNTRIES = [
    ("DE", "Germany", "Europe"), ("FR", "France", "Europe"), ("ES", "Spain", "Europe"),
    ("NO", "Norway", "Europe"), ("PL", "Poland", "Europe"), ("IE", "Ireland", "Europe"),
    ("GB", "United Kingdom", "Europe"), ("TR", "Türkiye", "Asia"), ("JP", "Japan", "Asia"),
    ("VN", "Viet Nam", "Asia"),
]  # fmt: skip

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
CREATE TABLE countries (
    code CHAR(2) PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL
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
    events: {{capture: triggers}}   # changes become events (the triggers are installed)
  orders:
    source: sample
    table: orders
    key: [id]
    events: {{capture: triggers}}
  order_lines:
    source: sample
    table: order_lines
    key: [order_id, line_no]
  countries:                    # reference data, kept in line by the nightly import
    source: sample
    table: countries
    key: [code]
    operations: [read, insert, update, delete]

jobs:
  countries_nightly:            # reconcile the reference list into the database each night
    schedule: "30 2 * * *"
    import:
      from: {{url: "{reference}/countries.csv", format: csv}}
      into: countries
      mode: mirror              # rows absent from the list are deleted
  customers_out:                # changed customers out, every 15 minutes
    every: 15m
    export:
      from: customers
      incremental: created_at
      to: {{dir: exports/, format: ndjson, chunk_rows: 500}}

auth:
  api_keys:
    - name: demo
      key_sha256: "{digest}"
      scopes: [customers:read, orders:read, order_lines:read, countries:read,
               jobs:countries_nightly, jobs:customers_out, events:read]

events:
  interval: 500ms

listen: 127.0.0.1:{port}
admin: 127.0.0.1:0
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
        # an out-of-date reference list: the nightly import corrects it (one renamed, one
        # missing, one that is no longer on the list)
        db.executemany("INSERT INTO countries VALUES (?,?,?)",
                       [("DE", "Germany", "Europe"), ("TR", "Turkey", "Asia"),
                        ("YU", "Yugoslavia", "Europe")])  # fmt: skip
    db.close()
    partial.replace(path)


def add_reference_table(path: Path) -> None:
    """The countries table, in a sample database made before it was part of the demo."""
    with sqlite3.connect(path) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'countries'").fetchone():
            db.execute("CREATE TABLE countries (code CHAR(2) PRIMARY KEY, name TEXT NOT NULL, "
                       "region TEXT NOT NULL)")  # fmt: skip
    db.close()


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


RELAY_CONFIG = """\
# Bridgehead demo relay: the cloud side, run locally with a development CA.
agents_listen: 127.0.0.1:0
listen: 127.0.0.1:{relay_port}
admin: null
tls: {{cert: pki/relay.pem, key: pki/relay.key}}
ca: {{cert: pki/ca.pem, key: pki/ca.key}}
callers:
  - name: demo
    token_sha256: "{digest}"
    agents: [demo]
webhooks:                       # the agent's change events, delivered to a local receiver
  - name: demo-receiver
    agents: [demo]
    resources: [customers, orders]
    url: {hook_url}
    secret: "{secret}"          # a Standard Webhooks secret; use ${{env:NAME}} in production
"""


@dataclass(frozen=True)
class DemoSetup:
    agent_file: Path
    relay: RelayConfig
    key: str
    folder: Path
    reference_port: int
    receiver: WebhookReceiver

    def announce(self, enrolled: EnrolledAgent, relay: Relay) -> str:
        agent = enrolled.agent
        assert agent is not None
        query = "/v1/customers?limit=3&order=balance.desc"
        through = f"{relay.callers_url}/agents/demo"
        auth = f"-H 'Authorization: Bearer {self.key}'"
        return "\n".join([
            "Bridgehead demo is running.",
            f"  folder:  {self.folder}  (agent.yaml, relay.yaml, sample.db, api-key.txt, pki/, "
            "certs/)",
            f"  API:     {agent.listen_url}/v1/customers   (also /v1/orders, /v1/order_lines)",
            f"  relay:   {through}/v1/...   (the agent dialed out to it over mutual TLS)",
            f"  admin:   {agent.admin_url}/   (the health page; also /status.json, /readyz, "
            "/metrics)",
            f"  jobs:    {agent.listen_url}/v1/jobs   (a nightly import of countries.csv, "
            "an incremental export of customers to exports/; both ran once at start)",
            f"  events:  {agent.listen_url}/v1/events   (customers and orders; the relay "
            f"delivers them to the webhook receiver at {self.receiver.url}, printed below)",
            "Try, directly and through the relay:",
            f"  curl -s {auth} '{agent.listen_url}{query}'",
            f"  curl -s --cacert {self.folder}/pki/ca.pem {auth} '{through}{query}'",
            "Change rows as the legacy application would, and watch the webhook lines:",
            f"  bridgehead demo change --dir {self.folder}",
            "Press Ctrl-C to stop.",
        ])  # fmt: skip


def _pki(folder: Path) -> None:
    """What `bridgehead-relay ca init` makes: a development CA and the relay's certificate."""
    pki = folder / "pki"
    if (pki / "relay.pem").exists():
        return
    ensure_private_dir(pki)
    ca_cert, ca_key = create_ca("Bridgehead demo CA")
    write_key_pair(pki / "ca.pem", pki / "ca.key", ca_cert, ca_key)
    write_key_pair(pki / "relay.pem", pki / "relay.key",
                   *issue_server_cert(ca_cert, ca_key, ["127.0.0.1", "localhost"]))  # fmt: skip


class ReferenceServer(LocalServer):
    """The demo's source of reference data: `reference/` of the demo folder over HTTP on
    127.0.0.1, as a supplier's file server would offer it."""

    def __init__(self, folder: Path, port: int) -> None:
        super().__init__(port)
        self.folder = folder

    def routes(self, app: web.Application) -> None:
        app.router.add_static("/", self.folder)


def write_reference(folder: Path) -> None:
    ensure_private_dir(folder)
    lines = ["code,name,region", *(",".join(row) for row in REFERENCE_COUNTRIES)]
    (folder / "countries.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EnrolledAgent:
    """The demo's agent, enrolled as it starts the way an operator enrolls one: a token from
    the demo relay (`bridgehead-relay token create`), then `bridgehead enroll` with it."""

    def __init__(self, relay: Relay, config_file: Path) -> None:
        self.relay, self.config_file = relay, config_file
        self.agent: Agent | None = None

    async def start(self) -> None:
        assert self.relay.agents_address is not None, "the relay starts first"
        address = HostPort(host="127.0.0.1", port=self.relay.agents_address[1])
        token = await asyncio.to_thread(
            create_token, self.relay.config, "demo", "demo", timedelta(minutes=5), address=address
        )
        await asyncio.to_thread(enroll_command, token, self.config_file)
        config = await asyncio.to_thread(load_config, self.config_file)
        self.agent = Agent(config, config_file=self.config_file)
        await self.agent.start()
        jobs = self.agent.jobs
        if jobs is not None:  # a first run of each job now, to see them on the health page
            for name in jobs.jobs:
                if await jobs.last(name) is None:
                    await jobs.run_now(name)

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()


def prepare(folder: Path, port: int, relay_port: int) -> DemoSetup:
    """Make what is missing in `folder`; the configs to run and what to tell the user."""
    folder = ensure_private_dir(folder.resolve())
    database = folder / "sample.db"
    if not database.exists():
        build_database(database)
    add_reference_table(database)
    install_triggers(database)
    key_file = folder / "api-key.txt"
    if not key_file.exists():
        write_private(key_file, (secrets.token_urlsafe(32) + "\n").encode())
    key = key_file.read_text().strip()
    _pki(folder)
    digest = hashlib.sha256(key.encode()).hexdigest()
    write_reference(folder / "reference")
    reference = free_port()
    receiver = WebhookReceiver(webhook_secret(folder), free_port())
    relay_text = RELAY_CONFIG.format(relay_port=relay_port, digest=digest, hook_url=receiver.url,
                                     secret=webhook_secret(folder))  # fmt: skip
    write_private(folder / "relay.yaml", relay_text.encode())
    text = CONFIG.format(digest=digest, port=port, reference=f"http://127.0.0.1:{reference}")
    (folder / "agent.yaml").write_text(text, encoding="utf-8")
    relay = load_relay_config(folder / "relay.yaml")
    return DemoSetup(folder / "agent.yaml", relay, key, folder, reference, receiver)


def run(folder: Path, port: int, relay_port: int) -> int:
    """Prepare the folder, then serve the demo's relay and agent until interrupted."""
    setup = prepare(folder, port, relay_port)
    logs.configure("WARNING")
    relay = Relay(setup.relay)
    agent = EnrolledAgent(relay, setup.agent_file)
    reference = ReferenceServer(setup.folder / "reference", setup.reference_port)
    services: list[Service] = [setup.receiver, relay, reference, agent]
    serve(services, lambda: print(setup.announce(agent, relay), flush=True))
    return 0


def change(folder: Path, count: int) -> int:
    """`bridgehead demo change`: change rows of the demo's database directly."""
    change_rows(folder.resolve() / "sample.db", count)
    return 0
