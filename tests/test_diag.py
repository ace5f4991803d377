# `bridgehead diag`: the tunnel checked step by step against a real relay (and where it
# fails: a closed port, a CA that does not match), the config redacted, and the command
# writing its zip in the working directory whether or not the agent runs.
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from agentproc import free_port
from connectproxy import ConnectProxy
from tunnelkit import Pki, make_pki, running_relay, tunnel_section

from bridgehead.agent.config.model import TunnelConfig
from bridgehead.agent.diag.redaction import Secrets, redacted_config
from bridgehead.agent.diag.tunnel import check_tunnel, failed_at

TOKEN = "cloud-token-for-diag"


def tunnel_config(section: dict[str, object]) -> TunnelConfig:
    return TunnelConfig.model_validate(section)


async def test_every_tunnel_step_passes_against_a_real_relay(pki: Pki) -> None:
    """DNS, TCP, TLS with the agent's certificate, the relay's acceptance and ALPN all pass
    against a running relay on 127.0.0.1."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    async with running_relay(pki, TOKEN) as relay:
        assert relay.agents_address is not None
        config = tunnel_config(tunnel_section(pki, relay.agents_address[1], cert, key))
        steps = await check_tunnel(config)
    assert [(s.name, s.ok) for s in steps] == [
        ("dns", True), ("tcp", True), ("tls", True), ("certificate", True), ("alpn", True)
    ]  # fmt: skip
    assert "TLSv1.3" in steps[2].detail
    assert "accepted" in steps[3].detail
    assert failed_at(steps) is None


async def test_a_closed_port_fails_at_tcp(pki: Pki) -> None:
    """Nothing listening on the relay's port: resolution passes, TCP fails, nothing after."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7")
    port = await asyncio.to_thread(free_port)
    steps = await check_tunnel(tunnel_config(tunnel_section(pki, port, cert, key)))
    assert [(s.name, s.ok) for s in steps] == [("dns", True), ("tcp", False)]
    assert failed_at(steps) == "tcp"


async def test_a_ca_that_did_not_sign_the_relay_fails_at_tls(pki: Pki, tmp_path: Path) -> None:
    """With tunnel.ca from another CA the handshake fails, saying the relay is not trusted."""
    other = tmp_path / "other"
    await asyncio.to_thread(other.mkdir)
    stranger = await asyncio.to_thread(make_pki, other)
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7")
    async with running_relay(pki, TOKEN) as relay:
        assert relay.agents_address is not None
        section = tunnel_section(pki, relay.agents_address[1], cert, key, ca=str(stranger.ca))
        steps = await check_tunnel(tunnel_config(section))
    assert failed_at(steps) == "tls"
    assert "not trusted by tunnel.ca" in steps[-1].detail


async def test_the_tunnel_steps_go_through_a_connect_proxy(pki: Pki) -> None:
    """With tunnel.proxy the proxy is resolved and connected to, CONNECT is asked for the
    relay and TLS runs inside it; a wrong proxy password fails at the proxy step, saying
    the proxy's status and never the password."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7")
    proxy = ConnectProxy(user="gw", password="proxy-pass-9")
    await proxy.start()
    proxy_port = proxy.port
    try:
        async with running_relay(pki, TOKEN) as relay:
            assert relay.agents_address is not None
            port = relay.agents_address[1]
            through = proxy.url.replace("http://", "http://gw:proxy-pass-9@")
            steps = await check_tunnel(
                tunnel_config(tunnel_section(pki, port, cert, key, proxy=through))
            )
            wrong = through.replace("proxy-pass-9", "not-the-pass")
            refused = await check_tunnel(
                tunnel_config(tunnel_section(pki, port, cert, key, proxy=wrong))
            )
    finally:
        await proxy.stop()
    assert [s.name for s in steps] == ["dns", "tcp", "proxy", "tls", "certificate", "alpn"]
    assert failed_at(steps) is None
    assert steps[0].detail.startswith(f"proxy 127.0.0.1:{proxy_port}")
    assert proxy.targets[0] == f"127.0.0.1:{port}"
    assert failed_at(refused) == "proxy"
    assert "407" in refused[-1].detail
    assert "not-the-pass" not in str(refused)


def test_the_config_is_shown_with_every_secret_replaced(tmp_path: Path) -> None:
    """References, enc: values, secret-named keys, ODBC passwords and URL passwords become
    markers; the rest of the config is kept as written."""
    text = yaml.safe_dump({
        "sources": {
            "erp": {"odbc": "DRIVER={x};UID=gw;PWD=literal-pw-1;", "pool_size": 3},
            "other": {"odbc": "DSN=y;PWD=${env:OTHER_PW}"},
        },
        "auth": {"api_keys": [{"name": "crm", "key_sha256": "ab" * 32}]},
        "admin": {"address": "127.0.0.1:8471", "token": "enc:v1:abc.sealed"},
        "tunnel": {"relay": "r:1", "proxy": "http://user:proxy-pw-2@proxy:3128"},
        "queries": {"q": {"source": "erp", "sql": "SELECT ${file:secret.txt}"}},
    })  # fmt: skip
    shown = redacted_config(text)
    for secret in ("literal-pw-1", "ab" * 32, "enc:v1", "proxy-pw-2", "sealed"):
        assert secret not in shown
    data = yaml.safe_load(shown)
    assert data["sources"]["erp"] == {"odbc": "DRIVER={x};UID=gw;PWD=[redacted];", "pool_size": 3}
    assert data["queries"]["q"]["sql"] == "SELECT [redacted] (from file:secret.txt)"
    assert data["admin"]["token"] == "[redacted]"
    assert redacted_config("a: [unclosed") == (
        "# the config is not valid YAML (line 1), so it is not included\n"
    )


def test_known_secret_values_are_scrubbed_from_any_text(tmp_path: Path) -> None:
    """Every value a reference resolves to is replaced wherever it shows up, an ODBC
    password quoted in braces included."""
    (tmp_path / "pw.txt").write_text("from-a-file-3\n")
    text = yaml.safe_dump({"sources": {"s": {"odbc": "DSN=x;PWD=${file:pw.txt}"}}})
    secrets = Secrets.of(text, tmp_path / "agent.yaml", None)
    assert secrets.scrub("driver said from-a-file-3 twice: from-a-file-3") == (
        "driver said [redacted] twice: [redacted]"
    )


def make_config(folder: Path) -> Path:
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.close()
    config = {
        "sources": {"s": {"sqlite": "t.db"}},
        "resources": {"t": {"source": "s", "table": "t"}},
        "admin": f"127.0.0.1:{free_port()}",
    }
    (folder / "agent.yaml").write_text(yaml.safe_dump(config))
    return folder / "agent.yaml"


def test_diag_writes_its_zip_here_and_prints_its_path(tmp_path: Path) -> None:
    """With no -o the zip is bridgehead-diag-<timestamp>.zip in the working directory; its
    path is printed; with the agent stopped the status says so and the rest is there."""
    config = make_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bridgehead.agent.cli", "diag", "-c", str(config)],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = Path(done.stdout.strip())
    assert made.parent == tmp_path
    assert made.name.startswith("bridgehead-diag-")
    with zipfile.ZipFile(made) as bundle:
        names = set(bundle.namelist())
        status = json.loads(bundle.read("status.json"))
        probes = json.loads(bundle.read("probes.json"))
        summary = bundle.read("summary.txt").decode()
    assert {"config.yaml", "versions.json", "odbc-drivers.txt", "tunnel.txt", "log.txt"} <= names
    assert status["agent"] == "not running"
    assert probes["s"]["ok"] is True
    assert "agent: not running" in summary


def test_diag_of_a_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    """A config file that cannot be read: exit 2 with one sentence, no zip."""
    done = subprocess.run(
        [sys.executable, "-m", "bridgehead.agent.cli", "diag", "-c", "nope.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "nope.yaml" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
