# The command line as a user meets it: `bridgehead demo` prints a curl line that works,
# `run` stops cleanly on SIGTERM, `check` reports problems with paths and lines and exit 2,
# and no secret or traceback ever reaches the terminal.
from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dbservers import PostgresServer

BRIDGEHEAD = [sys.executable, "-m", "bridgehead.agent.cli"]


def bridgehead(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BRIDGEHEAD, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(
        [*BRIDGEHEAD, "demo", "--dir", str(tmp_path / "demo"), "--port", "0", "--relay-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_demo_prints_a_curl_line_that_returns_rows(
    demo: tuple[subprocess.Popen[str], list[str]],
) -> None:
    """The demo's curl line returns sample rows with exact decimals; SIGTERM then stops it."""
    process, lines = demo
    curl = next((line.strip() for line in lines if line.strip().startswith("curl ")), None)
    assert curl is not None, lines
    result = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
    )
    page = json.loads(result.stdout)
    assert len(page["items"]) == 3
    balances = [item["balance"] for item in page["items"]]
    assert all(re.fullmatch(r"-?\d+\.\d\d", b) for b in balances)
    assert balances == sorted(balances, key=float, reverse=True)
    assert page["next_cursor"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


def run_curl(command: str, retry_for: float = 0) -> dict[str, object]:
    """The JSON a printed curl line returns; retried while the tunnel is still connecting."""
    deadline = time.monotonic() + retry_for
    while True:
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
        )
        page: dict[str, object] = json.loads(result.stdout)
        if "items" in page or time.monotonic() > deadline:
            return page
        time.sleep(0.2)


def write_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, shape WIDGET, name TEXT)")
    db.close()


GOOD = """\
sources:
  local:
    sqlite: data.db
resources:
  things:
    source: local
    table: t
auth:
  api_keys:
    - name: me
      key_sha256: "{digest}"
      scopes: [things:read]
"""


def test_check_accepts_a_good_config_and_reports_unknown_types(tmp_path: Path) -> None:
    """check exits 0 for a config that matches its database and warns about unknown types."""
    write_db(tmp_path / "data.db")
    config = tmp_path / "agent.yaml"
    config.write_text(GOOD.format(digest=hashlib.sha256(b"k").hexdigest()))
    result = bridgehead("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "sources.local: ok (sqlite)" in result.stdout
    assert "resources.things: ok (3 columns)" in result.stdout
    assert "column 'shape' has type 'WIDGET', which Bridgehead does not know" in result.stdout


def test_check_into_a_closed_pipe_exits_without_a_traceback(tmp_path: Path) -> None:
    """`bridgehead check | head -1`: output into a pipe whose reader has gone ends quietly,
    with no BrokenPipeError traceback on stderr."""
    write_db(tmp_path / "data.db")
    config = tmp_path / "agent.yaml"
    config.write_text(GOOD.format(digest=hashlib.sha256(b"k").hexdigest()))
    process = subprocess.Popen(
        [*BRIDGEHEAD, "check", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # the reader goes before the first line is written
    with process.stderr:
        stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert stderr == ""


def test_check_reports_every_config_problem_with_lines(tmp_path: Path) -> None:
    """A broken config is exit 2, one line per problem with path and line, and no traceback."""
    config = tmp_path / "agent.yaml"
    config.write_text(
        GOOD.format(digest="abc").replace("source: local", "source: locl")
        + "listen: nowhere\ncolour: blue\n"
    )
    result = bridgehead("check", "-c", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "auth.api_keys.0.key_sha256: line 11:" in result.stderr
    assert "listen.address: line 13: 'nowhere' is not HOST:PORT" in result.stderr
    assert "colour: line 14: unknown key 'colour'" in result.stderr


def test_check_reports_missing_tables_and_columns(tmp_path: Path) -> None:
    """check connects and names each table or column the database does not have."""
    write_db(tmp_path / "data.db")
    text = GOOD.format(digest=hashlib.sha256(b"k").hexdigest()).replace(
        "    table: t\n",
        "    table: t\n    columns: [id, colour]\n"
        "  more:\n    source: local\n    table: missing_table\n",
    )
    config = tmp_path / "agent.yaml"
    config.write_text(text.replace("scopes: [things:read]", "scopes: [things:read, more:read]"))
    result = bridgehead("check", "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert "resources.things.columns: FAILED: no column 'colour' in t" in result.stdout
    assert "resources.more.table: FAILED: no table or view 'missing_table'" in result.stdout


def test_check_never_shows_the_password(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """A wrong ODBC password fails check without the connection string's secret in any output."""
    secret = "s3cret-Wr0ng-pw"
    conn = postgres_server.odbc_connection_string("postgres").replace(
        postgres_server.password, "${env:DB_PW}"
    )
    config = tmp_path / "agent.yaml"
    config.write_text(f'sources:\n  pg:\n    odbc: "{conn}"\n    connect_timeout: 5s\n')
    result = subprocess.run(
        [*BRIDGEHEAD, "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DB_PW": secret, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert "sources.pg: FAILED:" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_run_with_a_bad_config_is_exit_2_in_one_sentence(tmp_path: Path) -> None:
    """run refuses a config with problems: exit 2, the problems on stderr, no traceback."""
    config = tmp_path / "agent.yaml"
    config.write_text("sources: {}\n")
    result = bridgehead("run", "-c", str(config))
    assert result.returncode == 2
    assert "sources: line 1:" in result.stderr
    assert "Traceback" not in result.stderr
    missing = bridgehead("run", "-c", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def start_up_case(tmp_path: Path, case: str) -> tuple[Path, socket.socket | None]:
    """A config whose agent cannot start for the given reason (and a socket to hold a port)."""
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.close()
    listen: Any = "127.0.0.1:0"
    state = tmp_path / "state"
    held = None
    certs = {"missing-cert": "nope.pem", "cert-is-a-folder": ".", "cert-not-pem": "bad.pem"}
    if case in certs:
        (tmp_path / "bad.pem").write_text("not a certificate\n")
        (tmp_path / "bad.pem").chmod(0o600)
        cert = str(tmp_path / certs[case])
        listen = {"address": "127.0.0.1:0", "tls": {"cert": cert, "key": cert}}
    elif case == "key-readable-by-others":
        (tmp_path / "agent.key").write_text("a key\n")
        (tmp_path / "agent.key").chmod(0o644)
        key = str(tmp_path / "agent.key")
        listen = {"address": "127.0.0.1:0", "tls": {"cert": key, "key": key}}
    elif case == "port-in-use":
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        listen = f"127.0.0.1:{held.getsockname()[1]}"
    elif case == "state-dir-is-a-file":
        state.write_text("a file where the state folder should be\n")
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": {"db": {"sqlite": str(db)}},
                "resources": {"t": {"source": "db", "table": "t"}},
                "listen": listen,
                "admin": None,
                "state_dir": str(state),
            }
        )
    )
    return config, held


@pytest.mark.parametrize(
    ("case", "code", "says"),
    [
        ("missing-cert", 2, "listen.tls: cannot load"),
        ("cert-is-a-folder", 2, "listen.tls: cannot load"),
        ("cert-not-pem", 2, "not a PEM certificate"),
        ("key-readable-by-others", 2, "(mode 0644); run: chmod 600 "),
        ("port-in-use", 1, "cannot listen on 127.0.0.1:"),
        ("state-dir-is-a-file", 2, "state_dir"),
    ],
)
def test_start_up_failures_are_one_sentence(
    tmp_path: Path, case: str, code: int, says: str
) -> None:
    """A start-up failure (certificate file, address in use, state folder) is one sentence
    naming the file or address and what to do, exit 2 for the config and 1 for the machine,
    never a traceback."""
    config, held = start_up_case(tmp_path, case)
    try:
        result = bridgehead("run", "-c", str(config), timeout=30)
    finally:
        if held is not None:
            held.close()
    assert result.returncode == code, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("bridgehead: ")


def test_demo_prints_its_admin_page_and_it_becomes_ready(
    demo: tuple[subprocess.Popen[str], list[str]],
) -> None:
    """The demo turns the admin listener on and prints its health page's URL, which serves
    the page; /readyz there answers 200 once the agent's tunnel to the demo relay is up."""
    _, lines = demo
    admin = next((line.split()[1] for line in lines if line.strip().startswith("admin:")), None)
    assert admin is not None, lines
    assert admin.startswith("http://127.0.0.1:")
    assert admin.endswith("/")
    page = subprocess.run(
        ["curl", "-s", admin], capture_output=True, text=True, timeout=30, check=True
    )
    assert "<title>Bridgehead agent health</title>" in page.stdout
    ready = admin + "readyz"
    deadline = time.monotonic() + 20
    while True:
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", ready],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.stdout == "200" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.stdout == "200"


def test_check_refuses_an_admin_address_off_loopback_without_a_token(tmp_path: Path) -> None:
    """check exits 2 for admin: 0.0.0.0:8471 with no token, saying what to add."""
    write_db(tmp_path / "data.db")
    config = tmp_path / "agent.yaml"
    text = GOOD.format(digest=hashlib.sha256(b"k").hexdigest()) + "admin: 0.0.0.0:8471\n"
    config.write_text(text)
    result = bridgehead("check", "-c", str(config))
    assert result.returncode == 2, result.stderr
    assert "admin address 0.0.0.0 is not loopback, so it needs a token" in result.stderr


def test_demo_runs_its_import_and_export_jobs(
    demo: tuple[subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    """At start the demo runs each job once: the nightly import mirrors countries.csv into
    the countries table (a renamed country corrected, a missing one added, one no longer on
    the list deleted), and the incremental export writes the customers to exports/; both
    are listed by GET /v1/jobs with their last run."""
    process, lines = demo
    api = next(line.split()[1] for line in lines if line.strip().startswith("API:"))
    base = api.removesuffix("/v1/customers")
    curl = next(line for line in lines if line.strip().startswith("curl ") and base in line)
    key = re.search(r"Bearer ([^']+)'", curl)
    assert key is not None

    def get(path: str) -> Any:
        auth = {"Authorization": f"Bearer {key.group(1)}"}
        request = urllib.request.Request(f"{base}{path}", headers=auth)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - 127.0.0.1
            return json.load(answer)

    deadline = time.monotonic() + 60
    while True:
        jobs = {job["name"]: job for job in get("/v1/jobs")["items"]}
        done = [j.get("last_run") and j["last_run"]["status"] for j in jobs.values()]
        if done == ["succeeded", "succeeded"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(jobs) == ["countries_nightly", "customers_out"]
    assert done == ["succeeded", "succeeded"], jobs
    imported = jobs["countries_nightly"]["last_run"]
    assert [imported[k] for k in ("inserted", "updated", "unchanged", "deleted")] == [8, 1, 1, 1]
    countries = {c["code"]: c["name"] for c in get("/v1/countries?limit=100")["items"]}
    assert len(countries) == 10
    assert countries["TR"] == "Türkiye"
    assert "YU" not in countries
    exported = jobs["customers_out"]["last_run"]
    assert exported["exported"] == 2000
    files = sorted((tmp_path / "demo" / "exports").iterdir())
    assert len(files) == 4
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


def test_demo_change_makes_the_webhook_receiver_print_the_events(
    demo: tuple[subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    """`bridgehead demo change` changes rows directly; the demo's triggers capture them, the
    relay delivers them signed to the demo's receiver, and the demo prints one webhook line
    per change, with the row as the API serves it."""
    process, lines = demo
    assert any("bridgehead demo change --dir" in line for line in lines)
    changed = bridgehead("demo", "change", "--dir", str(tmp_path / "demo"), "--rows", "2")
    assert changed.returncode == 0, changed.stderr
    rows = re.findall(r"changed (customers/\d+)", changed.stdout)
    placed = re.findall(r"placed (orders/\d+)", changed.stdout)
    assert len(rows) == 2
    assert len(placed) == 1
    assert process.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 30
    while len(printed) < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("webhook:"):
            printed.append(line)
    assert [line.split()[2] for line in printed] == [*rows, *placed], printed
    assert printed[0].split()[1] == "updated"
    assert printed[2].split()[1] == "created"
    assert '"balance":"' in printed[0]
