# NDJSON from PostgreSQL through the relay: stream_pg.py's agent config with a tunnel section
# added, a relay process (scale.Relay, with stream_pg's key as the caller token, so the one
# bearer token passes both), and the whole `big` table read over HTTPS from the relay.
from __future__ import annotations

import http.client
import time
from pathlib import Path

import stream_pg
import yaml
from procs import Procs, free_port
from scale import Relay, connected
from servers import agent_argv
from tunnelkit import Pki, make_pki, tunnel_section

AGENT = "plant-7"  # tunnelkit's relay config lets the caller reach this agent


def read_all(port: int, pki: Pki) -> tuple[int, float]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=600, context=pki.caller_context()
    )
    headers = {"Authorization": f"Bearer {stream_pg.KEY}", "Accept": "application/x-ndjson"}
    started = time.perf_counter()
    connection.request("GET", f"/agents/{AGENT}/v1/big", headers=headers)
    return stream_pg.counted(connection, started)


def through_relay(procs: Procs, folder: Path, connection_string: str, rows: int) -> float:
    """rows/s of the `big` table's NDJSON stream through a fresh relay and agent."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pki").mkdir(exist_ok=True)
    pki = make_pki(folder / "pki")
    relay = Relay(procs, pki, token=stream_pg.KEY)
    config = stream_pg.agent_config(folder, connection_string, rows, free_port())
    cert, key = pki.agent("agent", AGENT, "plants")
    settings = yaml.safe_load(config.read_text())
    settings["tunnel"] = tunnel_section(pki, relay.agents_port, cert, key, connections=1)
    config.write_text(yaml.safe_dump(settings))
    agent = procs.start("agent-ndjson-relay", agent_argv(config))
    try:
        up = lambda: connected(relay.admin, stream_pg.KEY).get(AGENT) == 1  # noqa: E731
        procs.wait_ready(agent, up, "agent-ndjson-relay")
        lines, seconds = read_all(relay.callers, pki)
    finally:
        procs.stop(agent)
        procs.stop(relay.process)
    assert lines == rows, (lines, rows)
    return lines / seconds
