"""The README's "Install on a server", walked on a machine with a real systemd (a container
booted by systemd-nspawn, tests/bootedroot.py): the .deb installed, a relay set up beside it
with `bridgehead-relay ca init` and `service install`, `bridgehead init` on a SQLite
database, the relay told the caller (`systemctl reload`), `token create`, `enroll`,
`service install`, then the first request through the relay. Then what an operator does
next: `systemctl reload bridgehead` with a new API key (the process and its tunnel stay),
an upgrade to the next revision (both services restart, with drain, the audit log's chain
intact across it, requests answered again) and a purge (units and config gone, the relay's
CA kept).

What runs only on a real server: the first boot's `network-online.target` and the
watchdog restarting a hung loop (tests/test_sdnotify.py checks the pings it would hear)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bootedroot import BootedRoot, why_not_here
from debkit import Debs

AGENT_YAML = "/etc/bridgehead/agent.yaml"
RELAY_YAML = "/etc/bridgehead-relay/relay.yaml"
RELAY = {
    "agents_listen": "127.0.0.1:8443",
    "listen": "127.0.0.1:8444",
    "tls": {"cert": "/etc/bridgehead-relay/relay.pem", "key": "/etc/bridgehead-relay/relay.key"},
    "ca": {"cert": "/etc/bridgehead-relay/ca.pem", "key": "/etc/bridgehead-relay/ca.key"},
}
CALLER = "https://127.0.0.1:8444/agents/plant-7/v1/customers?limit=2"
GET = """\
import json, ssl, sys, urllib.request
url, ca, key = sys.argv[1:4]
context = ssl.create_default_context(cafile=ca) if ca else None
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
with urllib.request.urlopen(request, context=context, timeout=30) as answer:
    print(json.dumps({"status": answer.status, "body": json.load(answer)}))
"""
ANSWER_SECONDS = 90


@pytest.fixture
def machine(tmp_path: Path, debs: Debs) -> Iterator[BootedRoot]:
    why = why_not_here()
    if why:
        pytest.skip(why)
    carry = tmp_path / "carry"
    carry.mkdir()
    for deb in (debs.first, debs.second):
        shutil.copy(deb, carry)
    (carry / "get.py").write_text(GET)
    with sqlite3.connect(carry / "shop.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        db.executemany("INSERT INTO customers (name) VALUES (?)", [("Ada",), ("Grace",)])
    db.close()
    root = BootedRoot(tmp_path, carry)
    try:
        problem = root.boot()
        if problem:
            pytest.skip(problem)
        if root("test", "-e", "/opt/bridgehead").returncode == 0:
            pytest.skip("Bridgehead is installed on this machine: the overlay would start from it")
        yield root
    finally:
        root.stop()


def carried(machine: BootedRoot, name: str, text: str, to: str) -> None:
    """Put `text` at `to` inside, as an operator's editor would (the file keeps its owner)."""
    (machine.carry / name).write_text(text)
    machine.must("sh", "-c", 'mkdir -p "${1%/*}" && cat "$0" > "$1"', f"/run/carry/{name}", to)


def get(machine: BootedRoot, url: str, key: str, ca: str = "") -> dict[str, object] | None:
    done = machine("/usr/bin/python3", "/run/carry/get.py", url, ca, key, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else None


def answered(machine: BootedRoot, url: str, key: str, ca: str = "") -> dict[str, object]:
    """The first 200 answer to GET `url` within ANSWER_SECONDS (a tunnel takes a moment)."""
    deadline = time.monotonic() + ANSWER_SECONDS
    while (answer := get(machine, url, key, ca)) is None:
        assert time.monotonic() < deadline, (
            f"no answer from {url}:\n{machine.journal('bridgehead')[-3000:]}"
            f"\n{machine.journal('bridgehead-relay')[-2000:]}"
        )
        time.sleep(1)
    return answer


def unit(machine: BootedRoot, name: str) -> dict[str, str]:
    shown = machine.must("systemctl", "show", name, "-p",
                         "ActiveState,SubState,MainPID,Type,User,StatusText")  # fmt: skip
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def names(answer: dict[str, object]) -> list[str]:
    body = answer["body"]
    assert isinstance(body, dict)
    return [row["name"] for row in body["items"]]


def test_package_to_first_request_under_systemd(machine: BootedRoot, debs: Debs) -> None:
    m = machine
    ca = "/etc/bridgehead-relay/ca.pem"
    m.must("dpkg", "-i", f"/run/carry/{debs.first.name}")

    # the relay, on its own loopback here as it would be on its own host
    carried(m, "relay.yaml", yaml.safe_dump(RELAY), RELAY_YAML)
    m.must("bridgehead-relay", "ca", "init", "-c", RELAY_YAML, "--san", "127.0.0.1")
    m.must("bridgehead-relay", "service", "install", "-c", RELAY_YAML)
    assert unit(m, "bridgehead-relay")["ActiveState"] == "active"

    # the starter config from the live database; its one key, printed once
    m.must("cp", "/run/carry/shop.db", "/srv/shop.db")
    started = m.must("bridgehead", "init", "--sqlite", "/srv/shop.db", "-o", AGENT_YAML)
    found = re.search(r"shown only now\): (\S+)", started)
    assert found, started
    key = found.group(1)
    m.must("bridgehead", "check", "-c", AGENT_YAML)

    # the relay learns the caller: the same key, so that both ends check it
    digest = hashlib.sha256(key.encode()).hexdigest()
    caller = {"name": "crm-cloud", "token_sha256": digest, "agents": ["plant-7"]}
    carried(m, "relay.yaml", yaml.safe_dump({**RELAY, "callers": [caller]}), RELAY_YAML)
    relay_pid = unit(m, "bridgehead-relay")["MainPID"]
    m.must("systemctl", "reload", "bridgehead-relay")
    assert unit(m, "bridgehead-relay")["MainPID"] == relay_pid

    # enroll with a one-time token, then the service
    token = m.must("bridgehead-relay", "token", "create", "-c", RELAY_YAML, "--agent", "plant-7")
    enrolled = m.must("bridgehead", "enroll", token.strip(), "-c", AGENT_YAML)
    assert "enrolled as agent plant-7" in enrolled
    m.must("bridgehead", "service", "install", "-c", AGENT_YAML)

    # the first request, through the relay and the agent's tunnel
    assert names(answered(m, CALLER, key, ca)) == ["Ada", "Grace"]
    agent = unit(m, "bridgehead")
    assert [agent[k] for k in ("Type", "User", "ActiveState")] == ["notify", "bridgehead", "active"]
    assert agent["StatusText"] == "serving"
    status = m.must("bridgehead", "service", "status")
    assert "ActiveState=active" in status
    assert '"ready": true' in status or '"ready":true' in status
    owners = m.must("stat", "-c", "%U %a %n", "/etc/bridgehead/certs", "/etc/bridgehead/agent.yaml",
                    "/var/lib/bridgehead-relay/enrollment-tokens.json")  # fmt: skip
    assert owners.splitlines() == [
        "bridgehead 750 /etc/bridgehead/certs", "root 640 /etc/bridgehead/agent.yaml",
        "bridgehead-relay 600 /var/lib/bridgehead-relay/enrollment-tokens.json",
    ]  # fmt: skip

    # systemctl reload: a second key, for the next request; the same process and tunnel
    config = yaml.safe_load(m.must("cat", AGENT_YAML))
    second = "a-second-key-added-by-a-reload"
    config["auth"]["api_keys"].append({
        "name": "second", "key_sha256": hashlib.sha256(second.encode()).hexdigest(),
        "scopes": ["customers:read"],
    })  # fmt: skip
    direct = "http://127.0.0.1:8470/v1/customers?limit=1"
    assert get(m, direct, second) is None
    connected = m.journal("bridgehead-relay").count("connected from")
    carried(m, "agent.yaml", yaml.safe_dump(config), AGENT_YAML)
    m.must("systemctl", "reload", "bridgehead")
    assert names(answered(m, direct, second)) == ["Ada"]
    assert unit(m, "bridgehead")["MainPID"] == agent["MainPID"]
    assert m.journal("bridgehead-relay").count("connected from") == connected

    # the upgrade: both services stop (draining) and start again on the new revision
    relay_pid = unit(m, "bridgehead-relay")["MainPID"]
    m.must("dpkg", "-i", f"/run/carry/{debs.second.name}")
    assert m.must("dpkg-query", "-W", "-f", "${Version}", "bridgehead").endswith("-2")
    after = unit(m, "bridgehead")
    assert after["ActiveState"] == "active"
    assert after["MainPID"] != agent["MainPID"]
    assert unit(m, "bridgehead-relay")["MainPID"] != relay_pid
    journal = m.journal("bridgehead")
    assert "stopping: finishing the requests in flight first" in journal
    assert "Deactivated successfully" in journal  # exit 0 after the drain, not killed
    assert "Killing" not in journal
    assert names(answered(m, CALLER, key, ca)) == ["Ada", "Grace"]
    verified = m.must("bridgehead", "audit", "verify", "/var/lib/bridgehead/audit.log")
    assert re.search(r"\d+ records, chain intact", verified), verified

    # the purge: the agent's units, config and user go; the relay's CA and config stay
    m.must("dpkg", "--purge", "bridgehead")
    for gone in ("/etc/systemd/system/bridgehead.service", "/etc/bridgehead", "/opt/bridgehead",
                 "/etc/systemd/system/bridgehead-relay.service"):  # fmt: skip
        assert m("test", "-e", gone).returncode != 0, gone
    assert unit(m, "bridgehead")["ActiveState"] == "inactive"
    assert unit(m, "bridgehead-relay")["ActiveState"] == "inactive"
    m.must("test", "-f", "/etc/bridgehead-relay/ca.key")
    m.must("test", "-f", "/var/lib/bridgehead/audit.log")
