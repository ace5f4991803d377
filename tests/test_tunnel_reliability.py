# The tunnel when things go wrong, end to end on 127.0.0.1: a connection killed mid-load, a
# relay restart, a silently dead path, a slow caller sharing a connection with quick ones, an
# outbound CONNECT proxy, and a tunnel-version mismatch. A real relay and a real agent over
# real mutual TLS 1.3 and HTTP/2, on the real clock with heartbeats short enough to stay quick.
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agentproc import free_port
from conftest import Caller
from connectproxy import ConnectProxy
from polling import settle, wait_for
from tunnelkit import Pki, relay_config, tunnel_section

from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.api.pipeline import Pipeline
from bridgehead.agent.app import Agent
from bridgehead.agent.tunnel.client import TunnelClient
from bridgehead.agent.tunnel.connection import TunnelConnection
from bridgehead.common.tunnel import ALPN
from bridgehead.common.tunnel.session import STREAM_WINDOW
from bridgehead.relay.app import Relay
from bridgehead.relay.link import AgentLink

TOKEN = "cloud-token-0123456789"
AGENT = "plant-7"
BIG_ROWS = 800_000  # ~100 MB of NDJSON
SMALL = {"source": "db", "table": "t", "key": ["id"], "operations": ["read", "insert"]}
BIG = {"source": "db", "table": "big", "key": ["id"], "max_rows": BIG_ROWS}
StartRelay = Callable[..., Awaitable[Relay]]
StartAgent = Callable[..., Awaitable[Agent]]


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 501)])
        db.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, note TEXT)")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO big SELECT i, 'name ' || i, hex(randomblob(40)) FROM n",
            (BIG_ROWS,),
        )
    db.close()


def connections(relay: Relay) -> int:
    return sum(view.connections for view in relay.registry.views())


def links(relay: Relay) -> list[AgentLink]:
    return [link for link in relay.registry.links() if link.identity.agent_id == AGENT]


def in_flight(relay: Relay) -> int:
    return sum(view.in_flight for view in relay.registry.views())


def has_in_flight(relay: Relay, count: int) -> bool:
    return in_flight(relay) == count


def tunnel_of(agent: Agent) -> TunnelClient:
    assert agent.tunnel is not None
    return agent.tunnel


@pytest.fixture
async def relays(pki: Pki) -> AsyncIterator[StartRelay]:
    """A factory: start a relay (extra relay config as keywords); all stopped after the test."""
    started: list[Relay] = []

    async def start(**extra: Any) -> Relay:
        relay = Relay(await asyncio.to_thread(relay_config, pki, TOKEN, **extra))
        await relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.stop()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with a small table `t` (500 rows) and a large one `big` (~100 MB NDJSON)."""
    path = tmp_path_factory.mktemp("db") / "t.db"
    make_db(path)
    return path


@pytest.fixture
async def agents(pki: Pki, database: Path, run_agent: Any) -> StartAgent:
    """A factory: start the agent plant-7 tunnelled to a relay port (tunnel config as keywords)."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", AGENT, "plants")

    async def start(port: int, **tunnel: Any) -> Agent:
        direct = await run_agent(
            {"db": {"sqlite": str(database)}},
            {"t": SMALL, "big": BIG},
            api_key=TOKEN,
            tunnel=tunnel_section(pki, port, cert, key, **tunnel),
            limits={"requests_per_second": 100_000, "burst": 100_000},
        )
        agent: Agent | None = direct.agent
        assert agent is not None
        return agent

    return start


@pytest.fixture
async def session(pki: Pki) -> AsyncIterator[aiohttp.ClientSession]:
    context = await asyncio.to_thread(pki.caller_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0)) as s:
        yield s


def caller(relay: Relay, session: aiohttp.ClientSession) -> Caller:
    return Caller(f"{relay.callers_url}/agents/{AGENT}", TOKEN, session)


class Gate:
    """The real pipeline behind a gate: requests wait (in flight) until the gate opens."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.opened = asyncio.Event()

    async def handle(self, request: ApiRequest, refusal: Exception | None = None) -> ApiResponse:
        await self.opened.wait()
        return await self.pipeline.handle(request, refusal)


class Tamper:
    """The real pipeline, with a CR LF smuggled into a header of the answers for one path."""

    def __init__(self, pipeline: Pipeline, path: str) -> None:
        self.pipeline, self.path = pipeline, path
        self.served = 0

    async def handle(self, request: ApiRequest, refusal: Exception | None = None) -> ApiResponse:
        response = await self.pipeline.handle(request, refusal)
        if request.path == self.path:
            self.served += 1
            response.headers["x-note"] = "a\r\nset-cookie: session=stolen"
        return response


# 1. A connection killed mid-load

NEW_IDS = itertools.count(10_000)  # rows the tests insert into the shared table


def pair(relay: Relay, tunnel: TunnelClient) -> list[tuple[AgentLink, TunnelConnection]]:
    """Each relay link with the agent connection at its other end (matched by socket)."""
    ends = {c.writer.get_extra_info("sockname"): c for c in tunnel.live}
    return [(link, ends[link.writer.get_extra_info("peername")]) for link in links(relay)]


@pytest.mark.parametrize("side", ["relay", "agent"])
async def test_a_killed_connection_fails_only_its_unretriable_requests(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession, side: str
) -> None:
    """With 100 requests in flight over 2 connections (50 GETs, 50 POSTs), aborting one
    connection (at the relay or at the agent) turns exactly its POSTs into 502 problems
    (not retried, not executed); its GETs are retried on the other connection, and every
    other request answers normally. The agent is back to 2 connections within 5 s."""
    relay = await relays(limits={"streams_per_caller": 200})  # one caller sends all 100
    assert relay.agents_address is not None
    tunnel = tunnel_of(await agents(relay.agents_address[1]))
    await wait_for(lambda: connections(relay) == 2 and tunnel.status.connected == 2)
    gate = Gate(tunnel.pipeline)
    tunnel.pipeline = gate  # type: ignore[assignment]
    for connection in tunnel.live:
        connection.pipeline = gate  # type: ignore[assignment]
    via = caller(relay, session)
    calls: dict[str, asyncio.Task[tuple[int, Any, Any]]] = {}
    for i in range(100):  # one at a time, so the relay spreads them (see the test below)
        if i % 4 < 2:
            name, call = f"get-{i}", via.get(f"/v1/t/{i + 1}", **{"X-Request-Id": f"get-{i}"})
        else:
            row = next(NEW_IDS)
            name = f"post-{row}"
            call = via.send("POST", "/v1/t", {"id": row, "name": name}, **{"X-Request-Id": name})
        calls[name] = asyncio.create_task(call)
        await wait_for(partial(has_in_flight, relay, i + 1))
    await wait_for(lambda: sum(len(c.streams) for c in tunnel.live) == 100)
    link, connection = max(pair(relay, tunnel), key=lambda ends: len(ends[1].streams))
    doomed = {s.headers["x-request-id"] for s in connection.streams.values()}
    if side == "relay":
        link.abort()
    else:
        connection.writer.transport.abort()
    await wait_for(lambda: link.closed.is_set() and connection not in tunnel.live)
    gate.opened.set()
    answers = await asyncio.wait_for(asyncio.gather(*calls.values()), 10)
    results = dict(zip(calls, answers, strict=True))

    lost = {name for name in doomed if name.startswith("post-")}
    assert 10 <= len(lost) <= 40, f"{len(doomed)} requests on the killed connection"
    for name, (status, headers, body) in results.items():
        if name in lost:
            assert status == 502, name
            assert headers["Content-Type"] == "application/problem+json"
            assert (body["status"], body["title"]) == (502, "Agent connection lost")
        else:
            assert status == (200 if name.startswith("get-") else 201), (name, status, body)
    for name in lost:  # a POST answered 502 here never ran
        assert (await via.get(f"/v1/t/{name.removeprefix('post-')}"))[0] == 404
    await wait_for(lambda: connections(relay) == 2 and tunnel.status.connected == 2, 5)
    assert (await via.get("/v1/t/7"))[0] == 200


async def test_a_burst_of_requests_is_spread_over_both_connections(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """100 requests sent at once (all in flight together) are spread over the agent's 2
    connections, each taking at least a quarter of them."""
    relay = await relays(limits={"streams_per_caller": 200})  # one caller sends all 100
    assert relay.agents_address is not None
    tunnel = tunnel_of(await agents(relay.agents_address[1]))
    await wait_for(lambda: connections(relay) == 2 and tunnel.status.connected == 2)
    gate = Gate(tunnel.pipeline)
    for connection in tunnel.live:
        connection.pipeline = gate  # type: ignore[assignment]
    via = caller(relay, session)
    calls = [asyncio.create_task(via.get(f"/v1/t/{i}")) for i in range(1, 101)]
    try:
        await wait_for(lambda: in_flight(relay) == 100)
        spread = sorted(link.in_flight for link in links(relay))
    finally:
        gate.opened.set()
        results = await asyncio.gather(*calls)
    assert [status for status, _, _ in results] == [200] * 100
    assert spread[0] >= 25, f"streams per connection: {spread}"


# 2. A relay restart


async def test_the_agent_is_back_within_2s_of_a_relay_restart(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """A relay stopped and started again on the same agent port has the agent's 2
    connections back within 2 s of starting (the first backoff steps stay under 2 s), and
    requests through it succeed."""
    port = await asyncio.to_thread(free_port)
    relay = await relays(agents_port=port)
    tunnel = tunnel_of(await agents(port))
    await wait_for(lambda: connections(relay) == 2)
    await relay.stop()
    await wait_for(lambda: tunnel.status.connected == 0, 5)
    restarted = await relays(agents_port=port)
    started = time.monotonic()
    await wait_for(lambda: connections(restarted) == 2, 5)
    took = time.monotonic() - started
    assert took < 2.0, f"reconnected {took:.2f} s after the relay came back"
    status, _, body = await caller(restarted, session).get("/v1/t/3")
    assert (status, body["id"]) == (200, 3)


async def test_stopping_the_relay_with_agents_connected_logs_no_errors(
    relays: StartRelay, agents: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay stopped while an agent's 2 connections are up logs no ERROR records."""
    relay = await relays()
    assert relay.agents_address is not None
    await agents(relay.agents_address[1])
    await wait_for(lambda: connections(relay) == 2)
    caplog.clear()
    await relay.stop()
    await asyncio.sleep(0.05)  # asyncio's done callbacks run
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


# 3. A silently dead path


@pytest.mark.parametrize("relay_pings", [False, True], ids=["silent-relay", "relay-pinging"])
async def test_a_silently_dead_path_is_replaced_within_dead_after(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession, relay_pings: bool
) -> None:
    """When the relay stops reading a connection without closing it, the agent's PINGs go
    unanswered; the agent closes that connection within its dead_after (2 s, heartbeat 0.5 s)
    and dials a new one that serves requests, whether the relay is silent too or still sends
    its own PINGs (those are not answers). The relay's own dead-path timer is set long, so
    the agent alone must notice."""
    heartbeat = "1s" if relay_pings else "60s"
    relay = await relays(heartbeat=heartbeat, dead_after="60s")
    assert relay.agents_address is not None
    tunnel = tunnel_of(
        await agents(relay.agents_address[1], connections=1, heartbeat="0.5s", dead_after="2s")
    )
    await wait_for(lambda: connections(relay) == 1 and tunnel.status.connected == 1)
    (old,) = tunnel.live
    await wait_for(lambda: old.liveness.rtt is not None, 3)  # PINGs answered while alive
    (link,) = links(relay)
    transport = link.writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    transport.pause_reading()
    paused = time.monotonic()
    try:
        await asyncio.sleep(1.2)
        assert len(old.liveness._pings) >= 2, "PINGs still acknowledged: the relay still reads"
        replaced = await settle(lambda: old not in tunnel.live, 3.0 - 1.2)
        noticed = time.monotonic() - paused
        assert replaced, f"the dead path was still in use {noticed:.2f} s after it went silent"
        assert noticed > 1.4, f"the path was closed after only {noticed:.2f} s of silence"
        await wait_for(lambda: tunnel.status.connected == 1 and len(links(relay)) == 2, 3)
    finally:
        # The relay cannot see the agent's abort on a connection it does not read; once it
        # reads again it drops that link, and callers reach the agent over the new one.
        transport.resume_reading()
    await wait_for(lambda: link not in links(relay) and connections(relay) == 1, 3)
    assert (await caller(relay, session).get("/v1/t/5"))[0] == 200


# 4. A slow caller sharing a connection with quick ones

NDJSON = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/x-ndjson"}


async def read_slowly(response: aiohttp.ClientResponse, taken: list[int]) -> None:
    """A very slow caller: 1 KB every 100 ms (10 KB/s)."""
    while data := await response.content.read(1024):
        taken.append(len(data))
        await asyncio.sleep(0.1)


async def read_all(response: aiohttp.ClientResponse, taken: list[int]) -> None:
    """A caller reading as fast as it can, to the end."""
    while data := await response.content.read(1 << 16):
        taken.append(len(data))


async def one_connection(relays: StartRelay, agents: StartAgent) -> tuple[Relay, Agent]:
    """A relay and the agent with a single tunnel connection, so every stream shares it."""
    relay = await relays()
    assert relay.agents_address is not None
    agent = await agents(relay.agents_address[1], connections=1)
    await wait_for(lambda: connections(relay) == 1 and tunnel_of(agent).status.connected == 1)
    return relay, agent


def queued_bytes(link: AgentLink) -> int:
    """Response bytes the relay holds in its per-stream queues, not yet taken by callers."""
    queues = [p.chunks._queue for p in link.streams.values()]  # type: ignore[attr-defined]
    return sum(len(chunk or b"") for queue in queues for chunk in queue)


def unacknowledged(link: AgentLink) -> int:
    """Bytes the relay received on the connection and never handed back to h2's connection
    flow control (h2's window manager: consumed minus processed)."""
    window = link.session._h2._inbound_flow_control_window_manager
    return window.max_window_size - window.current_window_size - window._bytes_processed


async def timed_get(via: Caller, path: str, limit: float) -> tuple[int | None, float]:
    """The status of GET `path` and how long it took; None if not answered within `limit`."""
    started = time.monotonic()
    try:
        status, _, _ = await asyncio.wait_for(via.get(path), limit)
    except TimeoutError:
        return None, limit
    return status, time.monotonic() - started


async def test_a_slow_caller_keeps_relay_buffering_within_a_window(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """A caller reading a ~100 MB NDJSON export at 10 KB/s through the relay: the relay's
    queue for that stream stays within one HTTP/2 window, the agent waits on that window
    instead of buffering, and when the caller goes away the agent cancels the export."""
    relay, agent = await one_connection(relays, agents)
    (link,) = links(relay)
    (connection,) = tunnel_of(agent).live
    taken: list[int] = []
    async with session.get(f"{caller(relay, session).base}/v1/big", headers=NDJSON) as slow:
        assert slow.status == 200
        reader = asyncio.create_task(read_slowly(slow, taken))
        await wait_for(lambda: bool(connection.streams))
        (sid,) = connection.streams
        queued, blocked = [], []
        for _ in range(40):  # 2 s
            await asyncio.sleep(0.05)
            queued.append(queued_bytes(link))
            blocked.append(connection.session.sendable(sid) == 0)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert 0 < max(queued) <= STREAM_WINDOW, f"queued bytes: {max(queued)}"
    assert sum(blocked) >= 20, "the agent was not waiting on the stream's window"
    assert sum(taken) < 100_000  # the caller really was slow; the export is ~100 MB
    await wait_for(lambda: not connection.streams, 5)  # the caller left: export cancelled
    assert not link.streams


async def test_small_requests_are_not_held_up_by_a_slow_caller_on_the_same_connection(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """While a caller reads a ~100 MB export at 10 KB/s over the agent's only tunnel
    connection, 20 small requests over that same connection each answer in under 1 s."""
    relay, _ = await one_connection(relays, agents)
    via = caller(relay, session)
    taken: list[int] = []
    async with session.get(f"{via.base}/v1/big", headers=NDJSON) as slow:
        assert slow.status == 200
        reader = asyncio.create_task(read_slowly(slow, taken))
        try:
            await asyncio.sleep(1.0)  # every buffer on the way fills up
            answers = []
            for i in range(1, 21):
                answers.append(await timed_get(via, f"/v1/t/{i}", 1.5))
                if answers[-1][0] is None:
                    break  # stalled; no need to wait for the others
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    assert [status for status, _ in answers] == [200] * 20
    assert max(took for _, took in answers) < 1.0


async def test_a_slow_caller_that_leaves_gives_back_the_connection_window(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """After a slow caller of a large export goes away mid-stream, the relay hands every
    byte it received back to the connection's flow control (none is left unacknowledged),
    and the connection goes on answering requests."""
    relay, agent = await one_connection(relays, agents)
    via = caller(relay, session)
    (link,) = links(relay)
    (connection,) = tunnel_of(agent).live
    assert (await via.get("/v1/t/1"))[0] == 200
    assert unacknowledged(link) == 0  # a completed response leaves nothing unacknowledged
    async with session.get(f"{via.base}/v1/big", headers=NDJSON) as slow:
        assert slow.status == 200
        await slow.content.read(1024)
        await asyncio.sleep(1.0)  # the caller stops reading; every buffer on the way fills up
        assert unacknowledged(link) > 0
    await wait_for(lambda: not connection.streams, 5)  # the caller left: export cancelled
    await settle(lambda: unacknowledged(link) == 0, 2)
    assert unacknowledged(link) == 0, "bytes never credited back to the connection window"
    answers = [await timed_get(via, f"/v1/t/{i}", 2) for i in range(1, 6)]
    assert [status for status, _ in answers] == [200] * 5


# 5. An outbound CONNECT proxy


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    started = ConnectProxy(user="user", password="p@ss")
    await started.start()
    yield started
    await started.stop()


@pytest.mark.parametrize("how", ["config", "HTTPS_PROXY"])
async def test_the_agent_dials_through_a_connect_proxy(
    relays: StartRelay,
    agents: StartAgent,
    session: aiohttp.ClientSession,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """With `tunnel.proxy` (or HTTPS_PROXY) set to an authenticating CONNECT proxy, both
    tunnel connections go through it to the relay's agent port, and requests work."""
    relay = await relays()
    assert relay.agents_address is not None
    port = relay.agents_address[1]
    url = f"http://user:p%40ss@127.0.0.1:{proxy.port}"
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    if how == "config":
        await agents(port, proxy=url)
    else:
        monkeypatch.setenv("HTTPS_PROXY", url)
        await agents(port)
    await wait_for(lambda: connections(relay) == 2)
    assert proxy.targets == [f"127.0.0.1:{port}"] * 2
    assert proxy.refused == 0
    status, _, body = await caller(relay, session).get("/v1/t/9")
    assert (status, body["id"]) == (200, 9)


async def test_no_proxy_exempts_the_relay(
    relays: StartRelay, agents: StartAgent, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY with NO_PROXY naming the relay's host: the agent dials the relay directly."""
    relay = await relays()
    assert relay.agents_address is not None
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    await agents(relay.agents_address[1])
    await wait_for(lambda: connections(relay) == 2)
    assert proxy.connections == 0


async def test_a_proxy_refusing_the_credentials_keeps_the_agent_out_with_its_reason(
    relays: StartRelay, agents: StartAgent, proxy: ConnectProxy
) -> None:
    """Wrong proxy credentials: the proxy answers 407, the agent stays disconnected (and
    keeps retrying), and its status names the proxy's status line."""
    relay = await relays()
    assert relay.agents_address is not None
    tunnel = tunnel_of(
        await agents(relay.agents_address[1], proxy=f"http://user:wrong@127.0.0.1:{proxy.port}")
    )
    await wait_for(lambda: proxy.refused >= 3, 5)
    assert tunnel.status.connected == 0
    assert connections(relay) == 0
    assert tunnel.status.last_error is not None
    assert "407 Proxy Authentication Required" in tunnel.status.last_error


# 6. A tunnel-version mismatch


def server_context(pki: Pki, alpn: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(pki.folder / "relay.pem", pki.folder / "relay.key")
    context.set_alpn_protocols([alpn])
    return context


async def test_an_agent_refuses_a_relay_speaking_another_tunnel_version(
    pki: Pki, agents: StartAgent
) -> None:
    """A relay offering only "bridgehead-tunnel/2": the agent does not serve the connection
    and its status says which version it speaks and that one side must be upgraded."""
    handshakes: list[str | None] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshakes.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        await reader.read()
        writer.close()

    context = await asyncio.to_thread(server_context, pki, "bridgehead-tunnel/2")
    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    try:
        tunnel = tunnel_of(await agents(server.sockets[0].getsockname()[1]))
        await wait_for(lambda: tunnel.status.last_error is not None, 5)
        error = tunnel.status.last_error
        assert error is not None
        assert error.startswith("TunnelRefused: ")
        assert ALPN in error
        assert "upgrade the agent or the relay" in error
        assert tunnel.status.connected == 0
        assert not tunnel.live
        assert handshakes
        assert set(handshakes) == {None}  # no protocol agreed
    finally:
        server.close()


def agent_client_context(pki: Pki, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=pki.ca)
    context.load_cert_chain(pki.folder / "agent.pem", pki.folder / "agent.key")
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


@pytest.mark.parametrize("alpn", [["bridgehead-tunnel/2"], []], ids=["v2", "none"])
async def test_the_relay_closes_a_connection_without_its_tunnel_version(
    pki: Pki, relays: StartRelay, alpn: list[str]
) -> None:
    """A client with a valid agent certificate but another (or no) ALPN protocol completes
    TLS and is then closed by the relay, which registers no agent."""
    relay = await relays()
    assert relay.agents_address is not None
    await asyncio.to_thread(pki.agent, "agent", AGENT, "plants")
    context = await asyncio.to_thread(agent_client_context, pki, alpn)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", relay.agents_address[1], ssl=context, server_hostname="127.0.0.1"
    )
    try:
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() is None
        assert await asyncio.wait_for(reader.read(100), 5) == b""
    finally:
        writer.close()
    assert relay.registry.views() == []


@pytest.mark.parametrize("side", ["relay", "agent"])
async def test_a_connection_lost_mid_export_cuts_the_callers_response(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession, side: str
) -> None:
    """When the tunnel connection carrying an NDJSON export dies mid-stream (aborted at the
    relay or at the agent), the caller's response is cut (an incomplete chunked body, a read
    error), never ended cleanly: a truncated export must not look complete."""
    relay, agent = await one_connection(relays, agents)
    (link,) = links(relay)
    (connection,) = tunnel_of(agent).live
    taken: list[int] = []
    async with session.get(f"{caller(relay, session).base}/v1/big", headers=NDJSON) as export:
        assert export.status == 200
        taken.append(len(await export.content.readexactly(100_000)))
        if side == "relay":
            link.abort()
        else:
            connection.writer.transport.abort()
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all(export, taken)
    assert sum(taken) < 5_000_000  # a small part of the ~100 MB export


class SlowToClose:
    """The real pipeline, but a streamed body takes `delay` s to close once given up (a source
    slow to cancel its statement)."""

    def __init__(self, pipeline: Pipeline, delay: float) -> None:
        self.pipeline, self.delay = pipeline, delay

    async def handle(self, request: ApiRequest, refusal: Exception | None = None) -> ApiResponse:
        response = await self.pipeline.handle(request, refusal)
        if not isinstance(response.body, bytes):
            response.body = self._slow(response.body)
        return response

    async def _slow(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            await asyncio.sleep(self.delay)
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()


async def test_a_stopped_tunnel_has_finished_its_requests(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """When the agent gives up on a tunnelled export stalled on a slow caller (its tunnel
    task cancelled, as Agent.stop() does once the grace is over), the tunnel task ends only
    after the export's task has (even with a source that takes 0.3 s to cancel), and the
    export's audit record (499: the caller never got the end) is written before the audit
    log closes."""
    relay, agent = await one_connection(relays, agents)
    tunnel = tunnel_of(agent)
    (connection,) = tunnel.live
    connection.pipeline = SlowToClose(tunnel.pipeline, 0.3)  # type: ignore[assignment]
    headers = {**NDJSON, "X-Request-Id": "stalled-export"}
    async with session.get(f"{caller(relay, session).base}/v1/big", headers=headers) as export:
        assert export.status == 200
        await export.content.read(1024)
        await asyncio.sleep(0.3)  # the caller stops reading; every buffer on the way fills up
        tasks = [s.task for s in connection.streams.values() if s.task is not None]
        assert len(tasks) == 1
        running = agent._tunnel_task
        assert running is not None
        running.cancel()  # what Agent.stop() does once its grace for draining is over
        await asyncio.gather(running, return_exceptions=True)
        ended = all(task.done() for task in tasks)
        await asyncio.wait_for(agent.stop(), 5)  # the rest: listener, sources, audit log
    audit = await asyncio.to_thread((agent.config.state_path / "audit.log").read_text)
    records = [json.loads(line) for line in audit.splitlines() if "stalled-export" in line]
    assert ended, "the export's task still ran after the tunnel task had ended"
    assert [r["status"] for r in records] == [499]


async def test_a_drain_lets_an_export_in_flight_finish(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """A connection asked to drain (as at agent shutdown or certificate rotation) takes no
    new requests but lets an export in flight run to its end: the caller gets every row,
    and the connection closes afterwards."""
    relay, agent = await one_connection(relays, agents)
    (connection,) = tunnel_of(agent).live
    url = f"{caller(relay, session).base}/v1/big?id=lte.50000"
    async with session.get(url, headers=NDJSON) as export:
        assert export.status == 200
        first = await export.content.readline()  # the agent now waits on the stream's window
        await connection.drain()
        rest = await asyncio.wait_for(export.read(), 10)
    assert len((first + rest).splitlines()) == 50_000
    await wait_for(connection.closed.is_set, 5)


async def test_a_malformed_answer_fails_only_its_own_request(
    relays: StartRelay, agents: StartAgent, session: aiohttp.ClientSession
) -> None:
    """An answer whose headers break HTTP/2's rules (a CR LF in a value) is a 502 for its
    caller with nothing of it passed on, and is not sent again (the agent serves it once);
    the connection stays up and keeps answering."""
    relay = await relays()
    assert relay.agents_address is not None
    tunnel = tunnel_of(await agents(relay.agents_address[1], connections=1))
    await wait_for(lambda: connections(relay) == 1 and tunnel.status.connected == 1)
    [link] = links(relay)
    tamper = Tamper(tunnel.pipeline, "/v1/t/1")
    for connection in tunnel.live:
        connection.pipeline = tamper  # type: ignore[assignment]
    via = caller(relay, session)
    status, headers, body = await via.get("/v1/t/1")
    assert status == 502
    assert body["title"] == "Bad agent response"
    assert "malformed" in body["detail"]
    assert tamper.served == 1
    assert "set-cookie" not in headers
    assert "x-note" not in headers
    status, _, body = await via.get("/v1/t/2")
    assert status == 200
    assert body["id"] == 2
    assert links(relay) == [link]
    assert not link.closed.is_set()
