# Item 4 of the security review: the relay respects each tunnel connection's stream limit
# (no 500s past it), admits more streams than the agent's pool has connections (those wait
# at the agent, not at the relay), caps each caller's requests in flight, and enforces its
# own body size and time limits before forwarding; one caller sending slow bodies starves
# nobody else.
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from polling import wait_for
from relaysec_kit import SECOND, TOKEN, links_of, start_agent, start_relay
from tunnelkit import Pki

from bridgehead.relay.app import Relay


def relay_streams(relay: Relay) -> int:
    """Callers' streams open on the relay's tunnel connections now."""
    return sum(link.in_flight for link in relay.registry.links())


async def never_ending(stop: asyncio.Event) -> AsyncIterator[bytes]:
    """A request body that sends its first bytes, then nothing until `stop` is set."""
    yield b'{"id": 1000, '
    await stop.wait()
    yield b'"name": "late"}'


async def session_for(pki: Pki) -> aiohttp.ClientSession:
    context = await asyncio.to_thread(pki.caller_context)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0))


async def status_of(s: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> int:
    async with s.request(method, url, **kw) as response:
        await response.read()
        return response.status


async def test_slow_bodies_of_one_caller_do_not_stop_another_callers_reads(
    pki: Pki, run_agent: Any, tmp_path: Path
) -> None:
    """110 never-finishing POST bodies from one caller (more than its cap of 20) leave
    another caller's 40 reads all answered 200; past its cap the first caller gets 429 with
    Retry-After, never a 500."""
    limits = {"streams_per_caller": 20, "stream_wait": "1s", "body_time": "20s"}
    relay = await start_relay(pki, limits=limits)
    stop = asyncio.Event()
    s = await session_for(pki)
    try:
        await start_agent(pki, relay, run_agent, tmp_path, api_key=TOKEN)
        await wait_for(lambda: links_of(relay) == 1)
        base = f"{relay.callers_url}/agents/plant-7"
        # The slow caller's token is unknown to the agent: it needs no agent scope at all.
        slow_headers = {"Authorization": f"Bearer {SECOND}", "Content-Type": "application/json"}
        slow = [
            asyncio.create_task(
                status_of(s, "POST", f"{base}/v1/t", data=never_ending(stop), headers=slow_headers)
            )
            for _ in range(110)
        ]
        await wait_for(lambda: sum(task.done() for task in slow) >= 90)
        reads = await asyncio.gather(
            *(status_of(s, "GET", f"{base}/v1/t/{i}",
                        headers={"Authorization": f"Bearer {TOKEN}"}) for i in range(1, 41))
        )  # fmt: skip
        refused = [task.result() for task in slow if task.done()]
        stop.set()
        finished = await asyncio.gather(*slow)
    finally:
        stop.set()
        await s.close()
        await relay.stop()
    assert reads == [200] * 40
    assert set(refused) == {429}
    assert 500 not in finished


async def test_500_concurrent_reads_get_no_500s(pki: Pki, run_agent: Any, tmp_path: Path) -> None:
    """500 concurrent GETs from one caller over one tunnel connection all get answered 200."""
    relay = await start_relay(pki, limits={"streams_per_caller": 500, "stream_wait": "20s"})
    s = await session_for(pki)
    try:
        await start_agent(pki, relay, run_agent, tmp_path)
        await wait_for(lambda: links_of(relay) == 1)
        base = f"{relay.callers_url}/agents/plant-7"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        statuses = await asyncio.gather(
            *(status_of(s, "GET", f"{base}/v1/t/{i % 50 + 1}", headers=headers)
              for i in range(500))
        )  # fmt: skip
    finally:
        await s.close()
        await relay.stop()
    assert statuses == [200] * 500


async def test_requests_waiting_for_the_pool_do_not_hold_the_relay_back(
    pki: Pki, run_agent: Any, tmp_path: Path
) -> None:
    """With the agent's only pooled connection held by a bulk load whose body has not ended,
    300 list reads over one tunnel connection (more than h2's implicit limit of 100 streams)
    all go down the tunnel and wait at the agent, none refused 503 by the relay's 1 s
    `stream_wait`; once the connection frees they are all answered 200 within a few seconds."""
    relay = await start_relay(pki, limits={"streams_per_caller": 1000, "stream_wait": "1s"})
    stop = asyncio.Event()
    s = await session_for(pki)
    try:
        await start_agent(pki, relay, run_agent, tmp_path, pool_size=1)
        await wait_for(lambda: links_of(relay) == 1)
        base = f"{relay.callers_url}/agents/plant-7/v1/t"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        load_headers = {**headers, "Content-Type": "application/x-ndjson"}
        load = asyncio.create_task(
            status_of(s, "POST", base, data=never_ending(stop), headers=load_headers)
        )
        await wait_for(lambda: relay_streams(relay) == 1)  # the load holds the connection
        reads = [
            asyncio.create_task(status_of(s, "GET", f"{base}?limit=2", headers=headers))
            for _ in range(300)
        ]
        await wait_for(lambda: relay_streams(relay) == 301)
        await asyncio.sleep(1.5)  # past stream_wait: the reads still wait, none answered
        waiting = sum(not task.done() for task in reads)
        stop.set()
        async with asyncio.timeout(15):
            statuses = await asyncio.gather(*reads)
        await load
    finally:
        stop.set()
        await s.close()
        await relay.stop()
    assert waiting == 300
    assert statuses == [200] * 300


async def test_the_relay_refuses_a_body_over_its_own_limit(
    pki: Pki, run_agent: Any, tmp_path: Path
) -> None:
    """With limits.max_body_bytes 4096, an 8 KiB body is refused 413 by the relay, declared
    or chunked, although the agent (1 MiB) would take it; a small body still goes through."""
    relay = await start_relay(pki, limits={"max_body_bytes": 4096})
    s = await session_for(pki)
    try:
        await start_agent(pki, relay, run_agent, tmp_path)
        await wait_for(lambda: links_of(relay) == 1)
        url = f"{relay.callers_url}/agents/plant-7/v1/t"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        big = b'{"id": 2000, "name": "' + b"x" * 8192 + b'"}'

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        declared = await status_of(s, "POST", url, data=big, headers=headers)
        streamed = await status_of(s, "POST", url, data=chunked(), headers=headers)
        small = await status_of(s, "POST", url, data=b'{"id": 2001, "name": "ok"}',
                                headers=headers)  # fmt: skip
    finally:
        await s.close()
        await relay.stop()
    assert (declared, streamed, small) == (413, 413, 201)


async def test_a_body_slower_than_body_time_is_refused(
    pki: Pki, run_agent: Any, tmp_path: Path
) -> None:
    """A body trickling a byte every 0.2 s is refused 408 once limits.body_time (1 s) has
    passed; one that pauses longer than body_idle_timeout (0.5 s) is refused 408 too."""
    relay = await start_relay(pki, limits={"body_time": "1s", "body_idle_timeout": "0.5s"})
    s = await session_for(pki)
    try:
        await start_agent(pki, relay, run_agent, tmp_path)
        await wait_for(lambda: links_of(relay) == 1)
        url = f"{relay.callers_url}/agents/plant-7/v1/t"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

        async def trickle(pause: float) -> AsyncIterator[bytes]:
            for byte in b'{"id": 3000, "name": "slow slow slow"}':
                await asyncio.sleep(pause)
                yield bytes([byte])

        async with asyncio.timeout(10):
            steady = await status_of(s, "POST", url, data=trickle(0.2), headers=headers)
            stalled = await status_of(s, "POST", url, data=trickle(0.8), headers=headers)
    finally:
        await s.close()
        await relay.stop()
    assert (steady, stalled) == (408, 408)
