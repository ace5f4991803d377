# The tunnel end to end on 127.0.0.1: a real relay and a real agent over mutual TLS 1.3 and
# HTTP/2. Requests through the relay get what a local caller gets; the relay's own auth,
# routing and failures (502) hold; certificates the relay did not issue are refused.
from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from conftest import Caller
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from polling import wait_for
from tunnelkit import (
    Pki,
    expired,
    make_pki,
    reached_both_ways,
    relay_config,
    running_relay,
    tunnel_section,
)

from bridgehead.relay.app import Relay

TOKEN = "cloud-token-0123456789"
WRITABLE = ["read", "insert", "update", "delete"]
CHEAP = "SELECT id, amount FROM t WHERE amount < :below ORDER BY id"


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount DECIMAL(10,2))")
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", f"{i}.50") for i in range(1, 501)]
        )
    db.close()


@pytest.fixture
async def relay(pki: Pki) -> Any:
    async with running_relay(pki, TOKEN) as started:
        yield started


@pytest.fixture
async def tunnel(pki: Pki, relay: Relay, tmp_path: Path, run_agent: Any) -> Any:
    """The same agent reached directly and through the relay (the same bearer token)."""
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    resources = {"t": {"source": "db", "table": "t", "key": ["id"], "operations": WRITABLE}}
    queries = {"cheap": {"source": "db", "sql": CHEAP, "params": {"below": "decimal"}}}
    async with reached_both_ways(
        pki, relay, run_agent, tmp_path / "t.db", resources, TOKEN, queries=queries
    ) as both:
        yield both


CASES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/t?limit=3&order=amount.desc", None),
    ("GET", "/v1/t/42", None),
    ("GET", "/v1/t?id=in.(1,2,3)&select=id,amount", None),
    ("GET", "/v1/t/999", None),
    ("GET", "/v1/t?nope=eq.1", None),
    ("POST", "/v1/t", {"id": 1000, "name": "Zoë", "amount": "1.25"}),
    ("POST", "/v1/queries/cheap", {"below": "4.00"}),
    ("POST", "/v1/queries/cheap", {"below": "lots"}),
    ("GET", "/v1/openapi.json", None),
    ("PUT", "/v1/t/1", {"name": "x"}),
    ("PATCH", "/v1/t/2", {"name": "no etag"}),
    ("GET", "/v1/t/%2C", None),
    ("GET", "/v2/nothing", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
async def test_relay_answers_exactly_like_the_agent(
    tunnel: tuple[Caller, Caller], method: str, path: str, body: Any
) -> None:
    """Each request gets the same status, body and ETag through the relay as directly."""
    direct, via = tunnel
    relayed = await via.send(method, path, body)
    if method == "POST":
        await direct.send("DELETE", "/v1/t/1000", **{"If-Match": "*"})  # insert afresh
    local = await direct.send(method, path, body)
    assert relayed[0] == local[0]
    strip = {"request_id"}
    if isinstance(local[2], dict):
        assert {k: v for k, v in relayed[2].items() if k not in strip} == {
            k: v for k, v in local[2].items() if k not in strip
        }
    assert relayed[1].get("ETag") == local[1].get("ETag")


async def test_writes_with_etags_through_the_relay(tunnel: tuple[Caller, Caller]) -> None:
    """PATCH with the ETag read through the relay, then DELETE: as a local caller would."""
    _, via = tunnel
    _, headers, before = await via.get("/v1/t/5")
    assert before["id"] == 5
    status, new_headers, updated = await via.send(
        "PATCH", "/v1/t/5", {"name": "renamed"}, **{"If-Match": headers["ETag"]}
    )
    assert status == 200, updated
    assert updated["name"] == "renamed"
    stale = await via.send("PATCH", "/v1/t/5", {"name": "again"}, **{"If-Match": headers["ETag"]})
    assert stale[0] == 412
    assert (await via.send("DELETE", "/v1/t/5", **{"If-Match": new_headers["ETag"]}))[0] == 204
    assert (await via.get("/v1/t/5"))[0] == 404


async def test_csv_export_is_identical_through_the_relay(tunnel: tuple[Caller, Caller]) -> None:
    """The CSV export's bytes are the same directly and through the relay."""
    direct, via = tunnel
    relayed = await via.get("/v1/t", {"order": "amount.desc"}, Accept="text/csv")
    local = await direct.get("/v1/t", {"order": "amount.desc"}, Accept="text/csv")
    assert relayed[0] == local[0] == 200
    assert relayed[2] == local[2]
    assert relayed[2].startswith(b"id,name,amount\r\n500,n500,500.50\r\n")


async def test_streams_come_through_the_tunnel(tunnel: tuple[Caller, Caller]) -> None:
    """An NDJSON export streams through the relay row for row."""
    _, via = tunnel
    status, headers, body = await via.get("/v1/t", Accept="application/x-ndjson")
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [r["id"] for r in rows] == list(range(1, 501))


async def test_many_concurrent_requests(tunnel: tuple[Caller, Caller]) -> None:
    """200 concurrent requests over 2 tunnel connections all succeed."""
    _, via = tunnel
    results = await asyncio.gather(*(via.get(f"/v1/t/{1 + i % 500}") for i in range(200)))
    assert [status for status, _, _ in results] == [200] * 200
    assert {body["id"] for _, _, body in results} == {1 + i % 500 for i in range(200)}


async def test_relay_auth_and_routing(tunnel: tuple[Caller, Caller], relay: Relay) -> None:
    """Unknown token 401, a caller not allowed 403, a known agent not connected 502."""
    _, via = tunnel
    status, _, body = await via.get("/v1/t", key="wrong")
    assert status == 401
    status, _, body = await via.get("/v1/t", key="other-token")
    assert status == 403
    assert body["detail"] == "other may not reach agent 'plant-7'"
    ghost = Caller(f"{relay.callers_url}/agents/ghost", TOKEN, via.session)
    status, headers, body = await ghost.get("/v1/t")
    assert status == 502
    assert headers["Content-Type"] == "application/problem+json"
    group = Caller(f"{relay.callers_url}/groups/plants", TOKEN, via.session)
    assert (await group.get("/v1/t/1"))[0] == 200


async def test_requests_through_the_relay_are_audited_as_relay(
    tunnel: tuple[Caller, Caller], tmp_path: Path
) -> None:
    """The agent's audit log says which requests came through the relay."""
    direct, via = tunnel
    await via.get("/v1/t/1", **{"X-Request-Id": "through-relay"})
    assert direct.agent is not None
    await direct.agent.stop()
    lines = (
        await asyncio.to_thread((tmp_path / "agent0" / "state" / "audit.log").read_text)
    ).splitlines()
    record = next(json.loads(line) for line in lines if "through-relay" in line)
    assert record["via"] == "relay"


async def tls_refused(pki: Pki, relay: Relay, cert: Path, key: Path) -> bool:
    """Whether the relay's agent port refuses a TLS session with this client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(pki.ca))
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["bridgehead-tunnel/1"])
    assert relay.agents_address is not None
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", relay.agents_address[1], ssl=context, server_hostname="127.0.0.1"
        )
        data = await asyncio.wait_for(reader.read(100), 5)  # TLS 1.3: refusal shows on read
        writer.close()
        return data == b""
    except (ssl.SSLError, ConnectionError):
        return True


async def test_certificates_the_relay_did_not_issue_are_refused(
    pki: Pki, relay: Relay, tmp_path: Path
) -> None:
    """A certificate from another CA and an expired one are refused at the TLS handshake."""
    strangers_folder = tmp_path / "strangers"
    await asyncio.to_thread(strangers_folder.mkdir)
    strangers = await asyncio.to_thread(make_pki, strangers_folder)
    foreign = await asyncio.to_thread(strangers.agent, "foreign", "plant-7")
    old = await asyncio.to_thread(expired, pki, "old", "plant-7")
    assert await tls_refused(pki, relay, *foreign)
    assert await tls_refused(pki, relay, *old)
    assert relay.registry.views() == []


async def test_relay_admin_lists_agents_and_serves_metrics(
    pki: Pki, tmp_path: Path, run_agent: Any
) -> None:
    """The admin port lists connected agents to an authenticated caller and exports metrics."""
    config = await asyncio.to_thread(relay_config, pki, TOKEN, admin="127.0.0.1:0")
    relay = Relay(config)
    await relay.start()
    try:
        await asyncio.to_thread(make_db, tmp_path / "t.db")
        cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
        assert relay.agents_address is not None
        await run_agent(
            {"db": {"sqlite": str(tmp_path / "t.db")}},
            {"t": {"source": "db", "table": "t"}},
            api_key=TOKEN,
            tunnel=tunnel_section(pki, relay.agents_address[1], cert, key),
        )
        await wait_for(lambda: sum(v.connections for v in relay.registry.views()) == 2)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{relay.admin_url}/agents") as response:
                assert response.status == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(f"{relay.admin_url}/agents", headers=auth) as response:
                listing = await response.json()
            async with session.get(f"{relay.admin_url}/metrics") as response:
                metrics = await response.text()
        (agent,) = listing["agents"]
        assert (agent["agent_id"], agent["group"], agent["connections"]) == ("plant-7", "plants", 2)
        assert "bridgehead_relay_tunnel_connections 2.0" in metrics
    finally:
        await relay.stop()


async def test_renewed_certificate_rotates_without_losing_requests(
    tunnel: tuple[Caller, Caller], pki: Pki, relay: Relay
) -> None:
    """New certificate files replace the connections one by one; no request in flight fails."""
    direct, via = tunnel
    assert direct.agent is not None
    assert direct.agent.tunnel is not None
    client = direct.agent.tunnel
    before = set(client.live)
    await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")  # same paths, new cert
    load = asyncio.gather(*(via.get(f"/v1/t/{1 + i}") for i in range(40)))
    assert await client.rotate_if_renewed()
    results = await load
    failures = [body for status, _, body in results if status != 200]
    assert failures == []
    await wait_for(lambda: len(client.live) == 2 and not (set(client.live) & before))
    assert (await via.get("/v1/t/7"))[0] == 200


async def test_a_certificate_that_names_no_agent_is_refused(pki: Pki, relay: Relay) -> None:
    """A certificate from the relay's own CA that names no agent (its server certificate) is
    refused: the agent's identity comes only from an agent certificate."""
    assert await tls_refused(pki, relay, pki.folder / "relay.pem", pki.folder / "relay.key")
    assert relay.registry.views() == []


def client_context(pki: Pki, cert: trustme.LeafCert | None) -> ssl.SSLContext:
    context = pki.caller_context()
    if cert is not None:
        cert.configure_cert(context)
    return context


async def call_relay(relay: Relay, context: ssl.SSLContext, path: str, token: str) -> Any:
    """(status, problem detail) of one GET through the caller port."""
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        url, auth = f"{relay.callers_url}{path}", {"Authorization": f"Bearer {token}"}
        async with session.get(url, headers=auth) as response:
            return response.status, (await response.json())["detail"]


async def test_callers_can_be_held_to_client_certificates(pki: Pki, tmp_path: Path) -> None:
    """With callers_ca the caller port takes only TLS clients holding a certificate from that
    CA (no certificate, or one from another CA, fails the handshake), and a caller bound by
    cert_sha256 must hold that very certificate: with another one from the same CA its
    token is a 401."""
    ca = trustme.CA()
    crm, other = ca.issue_cert("crm.example"), ca.issue_cert("other.example")
    await asyncio.to_thread(ca.cert_pem.write_to_path, str(tmp_path / "callers-ca.pem"))
    pem = crm.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    callers = [
        {"name": "crm", "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
         "agents": ["plant-7"], "cert_sha256": hashlib.sha256(der).hexdigest()},
        {"name": "open", "token_sha256": hashlib.sha256(b"open-token").hexdigest(),
         "agents": ["plant-9"]},
    ]  # fmt: skip
    config = await asyncio.to_thread(
        relay_config, pki, TOKEN, callers=callers, callers_ca=str(tmp_path / "callers-ca.pem")
    )
    stranger = trustme.CA().issue_cert("stranger.example")
    bare, foreign, holding_crm, holding_other = await asyncio.to_thread(
        lambda: [client_context(pki, c) for c in (None, stranger, crm, other)]
    )
    relay = Relay(config)
    await relay.start()
    try:
        for refused in (bare, foreign):
            with pytest.raises(aiohttp.ClientError):
                await call_relay(relay, refused, "/agents/plant-7/v1/t", TOKEN)
        # Past authentication: a 502 only says that no agent is connected.
        assert (await call_relay(relay, holding_crm, "/agents/plant-7/v1/t", TOKEN))[0] == 502
        status, detail = await call_relay(relay, holding_other, "/agents/plant-7/v1/t", TOKEN)
        assert status == 401
        assert "bound to a client certificate" in detail
        unbound = await call_relay(relay, holding_other, "/agents/plant-9/v1/t", "open-token")
        assert unbound[0] == 502
    finally:
        await relay.stop()


async def test_two_authorization_headers_are_refused(pki: Pki, relay: Relay) -> None:
    """The relay reads one Authorization header and the agent must read the same one: a
    request with two is a 400, whichever of them is valid."""
    context = await asyncio.to_thread(pki.caller_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        headers = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer other-token")]
        url = f"{relay.callers_url}/agents/plant-7/v1/t/1"
        async with session.get(url, headers=headers) as response:
            assert response.status == 400
            assert "one authorization header" in (await response.json())["detail"]
