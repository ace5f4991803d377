# Item 10 of the security review (the relay's part): real slow sockets against the caller
# port. A request head must arrive within header_timeout, an idle keep-alive connection is
# closed after keep_alive_timeout, connections are capped, and failed authentications are
# throttled per source address (429 with Retry-After).
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from relaysec_kit import TOKEN, closed_within, start_relay, tls_socket
from tunnelkit import Pki

from bridgehead.relay.admission import FailureThrottle

HEAD = b"GET /agents/plant-7/v1/t/1 HTTP/1.1\r\nHost: relay\r\n"


async def test_a_slowloris_head_and_a_silent_connection_are_closed(pki: Pki) -> None:
    """With header_timeout 0.5 s, a head sent a header every 0.2 s and a connection that
    sends nothing are both closed by the relay within 2 s."""
    relay = await start_relay(pki, limits={"header_timeout": "0.5s"})
    try:
        context = await asyncio.to_thread(pki.caller_context)
        slow_reader, slow = await tls_socket(relay, context)
        silent_reader, silent = await tls_socket(relay, context)
        slow.write(HEAD)

        async def drip() -> None:
            for i in range(20):
                slow.write(f"X-Drip-{i}: 1\r\n".encode())
                await asyncio.sleep(0.2)

        dripping = asyncio.create_task(drip())
        closed = await asyncio.gather(
            closed_within(slow_reader, 2.0), closed_within(silent_reader, 2.0)
        )
        dripping.cancel()
        for writer in (slow, silent):
            writer.close()
    finally:
        await relay.stop()
    assert closed == [True, True]


async def test_an_idle_keep_alive_connection_is_closed(pki: Pki) -> None:
    """After an answered request, a connection left idle is closed after keep_alive_timeout
    (0.5 s), well before the 60 s default."""
    relay = await start_relay(pki, limits={"keep_alive_timeout": "0.5s"})
    try:
        context = await asyncio.to_thread(pki.caller_context)
        reader, writer = await tls_socket(relay, context)
        writer.write(HEAD + b"\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))  # fmt: skip
        await reader.readexactly(length)
        closed = await closed_within(reader, 3.0)
        writer.close()
    finally:
        await relay.stop()
    assert head.startswith(b"HTTP/1.1 401")
    assert closed


async def test_connections_past_the_cap_are_closed_at_once(pki: Pki) -> None:
    """With max_connections 5, five idle connections stay open and a sixth is closed at
    once; after one of the five leaves, a new one is served."""
    relay = await start_relay(pki, limits={"max_connections": 5, "header_timeout": "10s"})
    try:
        context = await asyncio.to_thread(pki.caller_context)
        held = [await tls_socket(relay, context) for _ in range(5)]
        sixth_reader, sixth = await tls_socket(relay, context)
        refused = await closed_within(sixth_reader, 2.0)
        held[0][1].close()
        await held[0][1].wait_closed()
        await asyncio.sleep(0.1)  # the relay sees the close
        reader, writer = await tls_socket(relay, context)
        writer.write(HEAD + b"\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        for _, w in [*held[1:], (sixth_reader, sixth), (reader, writer)]:
            w.close()
    finally:
        await relay.stop()
    assert refused
    assert answer.startswith(b"HTTP/1.1 401")


async def test_failed_authentications_are_throttled_per_address(pki: Pki) -> None:
    """After 3 failed authentications from 127.0.0.1 (auth_failures 3), the next request is
    429 with Retry-After, even with a good token, without reaching an agent."""
    relay = await start_relay(pki, limits={"auth_failures": 3, "auth_window": "60s"})
    try:
        context = await asyncio.to_thread(pki.caller_context)
        url = f"{relay.callers_url}/agents/plant-7/v1/t/1"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
            statuses, after = [], None
            for token in ["wrong-1", "wrong-2", "wrong-3", "wrong-4", TOKEN]:
                async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    statuses.append(r.status)
                    after = r.headers.get("Retry-After")
    finally:
        await relay.stop()
    assert statuses == [401, 401, 401, 429, 429]
    assert after is not None
    assert 1 <= int(after) <= 60


def test_the_throttle_forgets_failures_older_than_its_window() -> None:
    """An address throttled after `limit` failures may try again once the oldest failure is
    `window` seconds old; other addresses are never affected."""
    now = [100.0]
    throttle = FailureThrottle(limit=2, window=10, clock=lambda: now[0])
    throttle.failed("10.0.0.1")
    now[0] = 104.0
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 6
    assert throttle.retry_after("10.0.0.2") is None
    now[0] = 110.0
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 4


async def test_relay_head_timeout_leaves_a_steady_request_alone(
    pki: Pki, run_agent: Any, tmp_path: Path
) -> None:
    """Requests sent whole on one connection, with pauses longer than header_timeout between
    them (keep-alive idle time, not head time), are all answered."""
    relay = await start_relay(pki, limits={"header_timeout": "0.3s", "keep_alive_timeout": "5s"})
    try:
        context = await asyncio.to_thread(pki.caller_context)
        reader, writer = await tls_socket(relay, context)
        answers = []
        for i in range(3):
            if i:
                await asyncio.sleep(0.4)  # idle between requests is keep-alive, not head time
            writer.write(HEAD + b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))  # fmt: skip
            await reader.readexactly(length)
            answers.append(head.split(b"\r\n")[0])
        writer.close()
    finally:
        await relay.stop()
    assert answers == [b"HTTP/1.1 401 Unauthorized"] * 3
