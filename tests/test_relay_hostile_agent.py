# A hostile agent (a real TLS client with a valid certificate, speaking raw h2 and breaking
# the rules on purpose) cannot split or fake what the relay sends its callers: a header
# block with two :status fields is a 502, and a body shorter than its content-length, hidden
# behind trailers, cuts the caller's connection instead of looking complete.
from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import h2.config
import h2.connection
import h2.events
import pytest
from tunnelkit import Pki, relay_config

from bridgehead.common.tunnel import ALPN
from bridgehead.relay.app import Relay

TOKEN = "cloud-token-0123456789"
Answer = Callable[[h2.connection.H2Connection, int], None]


def agent_context(pki: Pki, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols([ALPN])
    return context


async def serve_hostile(port: int, context: ssl.SSLContext, answer: Answer) -> None:
    """An h2 server on a connection it dialed, answering every request with `answer`."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    lax = h2.config.H2Configuration(
        client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    conn = h2.connection.H2Connection(lax)
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    try:
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived) and event.stream_id:
                    answer(conn, event.stream_id)
            writer.write(conn.data_to_send())
    finally:
        writer.close()


@pytest.fixture
async def hostile(pki: Pki) -> AsyncIterator[Callable[[Answer], Any]]:
    """A factory: a relay with one hostile agent plant-7 connected; (relay, caller URL)."""
    relay = Relay(await asyncio.to_thread(relay_config, pki, TOKEN))
    await relay.start()
    tasks: list[asyncio.Task[None]] = []

    async def start(answer: Answer) -> str:
        cert, key = await asyncio.to_thread(pki.agent, "hostile", "plant-7")
        context = await asyncio.to_thread(agent_context, pki, cert, key)
        assert relay.agents_address is not None
        tasks.append(asyncio.create_task(serve_hostile(relay.agents_address[1], context, answer)))
        async with asyncio.timeout(10):
            while not relay.registry.views():  # noqa: ASYNC110 - the relay's state, bounded
                await asyncio.sleep(0.02)
        return f"{relay.callers_url}/agents/plant-7/v1/t/1"

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task
    await relay.stop()


async def fetch(pki: Pki, url: str) -> tuple[int, bytes]:
    context = await asyncio.to_thread(pki.caller_context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with asyncio.timeout(10), session.get(url, headers=headers) as response:
            return response.status, await response.read()


async def test_two_status_fields_are_a_502_not_a_split_response(pki: Pki, hostile: Any) -> None:
    """`:status 200` then `:status 100` (h2 reads the first, a dict the last) is refused as
    malformed: the caller gets the relay's 502, never a 100 Continue followed by a body
    parsed as a second response."""

    def answer(conn: h2.connection.H2Connection, sid: int) -> None:
        smuggled = b"HTTP/1.1 200 OK\r\nset-cookie: session=stolen\r\ncontent-length: 0\r\n\r\n"
        conn.send_headers(sid, [(":status", "200"), (":status", "100")])
        conn.send_data(sid, smuggled, end_stream=True)

    url = await hostile(answer)
    status, body = await fetch(pki, url)
    assert status == 502
    assert b"malformed" in body
    assert b"stolen" not in body


async def test_a_body_shorter_than_its_content_length_cuts_the_caller(
    pki: Pki, hostile: Any
) -> None:
    """content-length 100, 10 bytes, then trailers: the caller's connection is cut (an
    incomplete response), so the next response on it can never be read as the rest."""

    def answer(conn: h2.connection.H2Connection, sid: int) -> None:
        conn.send_headers(sid, [(":status", "200"), ("content-length", "100")])
        conn.send_data(sid, b"x" * 10)
        conn.send_headers(sid, [("x-trailer", "1")], end_stream=True)

    url = await hostile(answer)
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(pki, url)
