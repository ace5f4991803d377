# Scale through the relay, measured once after the rounds: many concurrent NDJSON streams over
# one tunnel connection (agent and relay RSS per open stream), and many agents on one relay
# (relay RSS per agent, the agents' own RSS, and the time for all of them to reconnect after a
# relay restart). The relay and agents are bench/tunnel.py's processes and configs.
from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import tunnel
from figures import Figures
from procs import Procs, accepts, free_port
from servers import agent_argv
from tunnelkit import Pki, make_pki, relay_config, tunnel_section

TOKEN, AGENT = tunnel.TOKEN, tunnel.AGENT_ID
STREAM_ROWS = 20_000  # ~2 MB each: more than the buffers between caller and agent hold


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024


def agent_views(admin_port: int, token: str = TOKEN) -> list[dict[str, Any]]:
    """The relay's admin `/agents`: each agent's connections and requests in flight."""
    url = f"http://127.0.0.1:{admin_port}/agents"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - 127.0.0.1
        views: list[dict[str, Any]] = orjson.loads(response.read())["agents"]
        return views


def connected(admin_port: int, token: str = TOKEN) -> dict[str, int]:
    """Connections per agent id."""
    return {a["agent_id"]: a["connections"] for a in agent_views(admin_port, token)}


def wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return True
        time.sleep(0.1)
    return False


class Relay:
    """The relay as a process, restartable on the same ports."""

    def __init__(self, procs: Procs, pki: Pki, token: str = TOKEN) -> None:
        self.procs, self.agents_port, self.callers, self.admin = (
            procs,
            *(free_port() for _ in range(3)),
        )
        relay_config(
            pki,
            token,
            agents_port=self.agents_port,
            listen=f"127.0.0.1:{self.callers}",
            admin=f"127.0.0.1:{self.admin}",
            request_timeout="120s",
            heartbeat="5s",
            dead_after="15s",
            limits={
                "streams_per_caller": 100_000,
                "max_connections": 100_000,
                "stream_wait": "30s",
            },
        )
        self.argv = tunnel.relay_command(pki.folder / "relay.yaml")
        self.process = self.start()

    def start(self) -> Any:
        process = self.procs.start("scale-relay", self.argv)
        self.procs.wait_ready(
            process, lambda: accepts(self.callers) and accepts(self.admin), "scale-relay"
        )
        return process

    def restart(self) -> None:
        self.procs.stop(self.process)
        self.process = self.start()


def start_agent(
    procs: Procs,
    folder: Path,
    pki: Pki,
    relay: Relay,
    *,
    name: str,
    agent_id: str,
    listen: str | None,
) -> Any:
    cert, key = pki.agent(name, agent_id, "plants")
    section = tunnel_section(
        pki, relay.agents_port, cert, key, connections=1, heartbeat="5s", dead_after="15s"
    )
    config = tunnel.write_agent_config(folder, STREAM_ROWS, listen, section, name)
    return procs.start(name, agent_argv(config))


async def open_stream(port: int, tls: ssl.SSLContext) -> Any:
    """One NDJSON GET through the relay, held open after its first bytes: a small receive
    buffer, so the stream stays in flight (flow control holds the rest at the agent)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=tls, server_hostname="127.0.0.1", limit=8192
    )
    writer.write(
        f"GET /agents/{AGENT}/v1/t HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Accept: application/x-ndjson\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        raise OSError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    await reader.read(1024)
    return writer


async def peak_in_flight(admin_port: int, until: asyncio.Future[Any]) -> int:
    """The most requests the relay had in flight on the tunnel at once, polled until `until`."""
    peak = 0
    while not until.done():
        views = await asyncio.to_thread(agent_views, admin_port)
        peak = max([peak, *(a["in_flight"] for a in views)])
        await asyncio.sleep(0.2)
    return peak


async def hold_streams(
    relay: Relay, tls: ssl.SSLContext, count: int, pids: dict[str, int], figures: Figures
) -> None:
    before = {name: rss_mib(pid) for name, pid in pids.items()}
    began = time.perf_counter()
    tasks = [asyncio.ensure_future(open_stream(relay.callers, tls)) for _ in range(count)]
    all_in = asyncio.ensure_future(asyncio.wait(tasks, timeout=60))
    peak = asyncio.ensure_future(peak_in_flight(relay.admin, all_in))
    done, pending = await all_in
    figures.add("streams in flight at once over one tunnel connection", await peak, "streams")
    opened = [t.result() for t in done if not t.exception()]
    failed = [t.exception() for t in done if t.exception()]
    if failed or pending:
        first = f"{type(failed[0]).__name__}: {failed[0]}" if failed else "-"
        figures.note(
            f"{count:,} streams",
            f"{len(failed)} failed (the first: {first}), {len(pending)} not answered within 60 s",
        )
    # answered: the first rows arrived; the others wait at the agent for a pooled connection
    figures.add("streams answering at once over one tunnel connection", len(opened), "streams")
    figures.add(f"time to open {count:,} streams", time.perf_counter() - began, "s")
    await asyncio.sleep(1)
    for name, pid in pids.items():
        grew = rss_mib(pid) - before[name]
        figures.add(f"{name} RSS per stream", grew * 1024 / max(1, len(opened)), "KiB")
    for task in pending:
        task.cancel()
    for writer in opened:
        writer.close()


def more_files() -> None:
    """Room for the streams' sockets, here and in the relay this process starts."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def streams(figures: Figures, procs: Procs, folder: Path, count: int) -> None:
    more_files()
    folder.mkdir(parents=True, exist_ok=True)
    tunnel.make_db(folder / "t.db", STREAM_ROWS)
    (folder / "pki").mkdir()
    pki = make_pki(folder / "pki")
    relay = Relay(procs, pki)
    port = free_port()
    agent = start_agent(
        procs, folder, pki, relay, name="agent", agent_id=AGENT, listen=f"127.0.0.1:{port}"
    )
    procs.wait_ready(agent, lambda: connected(relay.admin).get(AGENT) == 1, "agent")
    pids = {"agent": agent.pid, "relay": relay.process.pid}
    asyncio.run(hold_streams(relay, pki.caller_context(), count, pids, figures))
    procs.stop(agent)
    procs.stop(relay.process)


def agents(figures: Figures, procs: Procs, folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tunnel.make_db(folder / "t.db", 10)
    (folder / "pki").mkdir()
    pki = make_pki(folder / "pki")
    relay = Relay(procs, pki)
    before = rss_mib(relay.process.pid)
    began = time.perf_counter()
    started = [
        start_agent(
            procs, folder, pki, relay, name=f"scale-{i}", agent_id=f"scale-{i}", listen=None
        )
        for i in range(count)
    ]
    up = lambda: sum(1 for n in connected(relay.admin).values() if n >= 1) >= count  # noqa: E731
    if not wait_for(up, 300):
        raise RuntimeError(
            f"only {len(connected(relay.admin))} of {count} agents connected in 300 s"
        )
    figures.add(f"{count} agents: start until all connected", time.perf_counter() - began, "s")
    time.sleep(1)
    figures.add("relay RSS per agent", (rss_mib(relay.process.pid) - before) * 1024 / count, "KiB")
    figures.add(
        "agent RSS (mean, tunnel only)", sum(rss_mib(p.pid) for p in started) / count, "MiB"
    )
    relay.restart()
    began = time.perf_counter()
    if not wait_for(up, 300):
        raise RuntimeError(
            f"only {len(connected(relay.admin))} of {count} agents reconnected in 300 s"
        )
    figures.add(
        f"{count} agents: relay restart until all reconnected", time.perf_counter() - began, "s"
    )
    procs.stop_many(started)
    procs.stop(relay.process)
