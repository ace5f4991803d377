"""`bridgehead init` on real SQLite, PostgreSQL and MariaDB databases with a single key, a
composite key, a unique index standing in for a key, a keyless table and a view: the written
config passes `check`, serves rows, and holds no password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from backends import Backend
from conftest import make_backend

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config
from bridgehead.agent.starter import hide_password, split_attributes
from bridgehead.certs.secretbox import SecretBox

BRIDGEHEAD = [sys.executable, "-m", "bridgehead.agent.cli"]
SCHEMA = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(40))",
    "CREATE TABLE order_lines (order_id INTEGER NOT NULL, line INTEGER NOT NULL, "
    "qty INTEGER, PRIMARY KEY (order_id, line))",
    "CREATE TABLE codes (code VARCHAR(10) NOT NULL, label VARCHAR(40))",
    "CREATE UNIQUE INDEX codes_code ON codes (code)",
    "CREATE TABLE notes (body VARCHAR(100))",
    "CREATE VIEW named_customers AS SELECT id, name FROM customers",
    "INSERT INTO customers VALUES (1, 'Zoe'), (2, 'Oyvind')",
    "INSERT INTO order_lines VALUES (7, 1, 3), (7, 2, 5)",
]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BRIDGEHEAD, *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env)  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    b = make_backend(request.param, request, tmp_path, "starter")
    b.run(SCHEMA)
    if b.server is not None:  # another database on the same server: not to be listed
        other = make_backend(request.param, request, tmp_path, "starter_elsewhere")
        other.run(["CREATE TABLE elsewhere (id INTEGER PRIMARY KEY)"])
    return b


def init_args(backend: Backend) -> list[str]:
    if "sqlite" in backend.source:
        return ["--sqlite", str(backend.source["sqlite"])]
    return ["--odbc", backend.source["odbc"]]


def on_a_free_port(config: Path) -> Path:
    """The same config beside it, listening on any free port, with no admin listener."""
    data = yaml.safe_load(config.read_text())
    data.update(listen="127.0.0.1:0", admin=None)
    copy = config.with_name("served.yaml")
    copy.write_text(yaml.safe_dump(data))
    return copy


def resources(config: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = yaml.safe_load(config.read_text())["resources"]
    return found


@pytest.mark.allow_blocking  # runs the CLI as a user would, then serves what it wrote
async def test_init_writes_a_config_that_checks_and_serves(
    backend: Backend, tmp_path: Path
) -> None:
    """Keys from the primary key (single and composite) or a NOT NULL unique index; a keyless
    table and a view listed with a comment; no password in the file; `check` passes; the
    agent serves the rows with the printed API key."""
    config = tmp_path / "out" / "agent.yaml"
    config.parent.mkdir()
    result = run("init", *init_args(backend), "-o", str(config))
    assert result.returncode == 0, result.stderr
    api_key = result.stdout.split("(shown only now): ")[1].split()[0]
    text = config.read_text()
    found = resources(config)
    keys = {name: r.get("key") for name, r in found.items()}
    assert keys == {"codes": ["code"], "customers": ["id"], "named_customers": None,
                    "notes": None, "order_lines": ["order_id", "line"]}  # fmt: skip
    assert text.count("# no primary key or unique index found") == 2
    assert "# a view" in text
    env = {**os.environ}
    if backend.server is not None:
        assert backend.server.password not in text
        assert "${env:BRIDGEHEAD_DB_PASSWORD}" in text
        assert "set BRIDGEHEAD_DB_PASSWORD" in result.stdout
        env["BRIDGEHEAD_DB_PASSWORD"] = backend.server.password
    checked = run("check", "-c", str(config), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    served = Agent(load_config(on_a_free_port(config), environ=env))
    await served.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as s:
            async with s.get(f"{served.listen_url}/v1/customers?order=id") as response:
                rows = (await response.json())["items"]
            async with s.get(f"{served.listen_url}/v1/order_lines/7,2") as response:
                line = await response.json()
    finally:
        await served.stop()
    assert [r["name"] for r in rows] == ["Zoe", "Oyvind"]
    assert line["qty"] == 5


@pytest.mark.allow_blocking  # runs the CLI as a user would
def test_patterns_choose_the_tables(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """--include and --exclude match table names (and schema.name), case-insensitively."""
    b = make_backend("sqlite", request, tmp_path, "patterns")
    b.run(SCHEMA)
    config = tmp_path / "agent.yaml"
    result = run("init", *init_args(b), "-o", str(config), "--include", "*ORDER*",
                 "--include", "c*", "--exclude", "codes")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(resources(config)) == ["customers", "order_lines"]


@pytest.mark.allow_blocking  # runs the CLI as a user would
def test_with_a_secret_key_the_connection_string_is_sealed(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """When the config's state folder holds the agent's secret key, the whole ODBC string
    is written as an enc: value that opens to what was given."""
    b = make_backend("postgresql", request, tmp_path, "sealed")
    b.run(SCHEMA[:1])
    SecretBox(tmp_path / "state").seal("first use makes the key")
    config = tmp_path / "agent.yaml"
    result = run("init", *init_args(b), "-o", str(config))
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load(config.read_text())["sources"]["db"]["odbc"]
    assert written.startswith("enc:v1.")
    assert SecretBox(tmp_path / "state").open(written) == b.source["odbc"]
    assert "BRIDGEHEAD_DB_PASSWORD" not in result.stdout


@pytest.mark.allow_blocking  # runs the CLI as a user would
def test_init_never_overwrites_and_names_what_is_wrong(tmp_path: Path) -> None:
    """An existing output file and a missing SQLite file are one sentence each, exit 2."""
    (tmp_path / "agent.yaml").write_text("# mine\n")
    taken = run("init", "--sqlite", str(tmp_path / "x.db"), "-o", str(tmp_path / "agent.yaml"))
    missing = run("init", "--sqlite", str(tmp_path / "x.db"), "-o", str(tmp_path / "new.yaml"))
    assert taken.returncode == missing.returncode == 2
    assert "already exists" in taken.stderr
    assert "is not a SQLite database file" in missing.stderr
    assert (tmp_path / "agent.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "x.db").exists()


def test_the_password_moves_out_of_the_connection_string() -> None:
    """PWD (any case, braced or not) becomes an env reference; other attributes stay whole."""
    text = "DRIVER={PostgreSQL Unicode};SERVER=db;pwd={se;cr}}et};UID=gw"
    assert split_attributes(text) == [
        "DRIVER={PostgreSQL Unicode}", "SERVER=db", "pwd={se;cr}}et}", "UID=gw",
    ]  # fmt: skip
    assert hide_password(text, "V") == (
        "DRIVER={PostgreSQL Unicode};SERVER=db;pwd=${env:V};UID=gw",
        True,
    )
    assert hide_password("DSN=erp", "V") == ("DSN=erp", False)
