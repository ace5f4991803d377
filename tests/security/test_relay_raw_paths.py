# Item 8 of the security review: the relay forwards the path after its /agents/ID or
# /groups/G prefix byte for byte, so an encoded comma, `?` or `&` means to the agent what it
# means when sent to the agent directly.
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from polling import wait_for
from relaysec_kit import TOKEN, links_of, start_agent, start_relay
from tunnelkit import Pki
from yarl import URL

PATHS = [
    "/v1/lines/1%2C2",
    "/v1/lines/1,2",
    "/v1/t%3Fselect=email%26limit=2",
    "/v1/t?select=email&limit=2",
    "/v1/t/%31",
    "/v1/t?name=eq.real%26id%3D1",
]


@pytest.mark.parametrize("path", PATHS)
async def test_the_relay_forwards_the_path_byte_for_byte(
    pki: Pki, run_agent: Any, tmp_path: Path, path: str
) -> None:
    """Through the relay each path gets the status and body it gets sent to the agent."""
    relay = await start_relay(pki)
    try:
        direct = await start_agent(pki, relay, run_agent, tmp_path)
        await wait_for(lambda: links_of(relay) == 1)
        context = await asyncio.to_thread(pki.caller_context)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answers = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
            for base in (f"{relay.callers_url}/agents/plant-7", direct.base):
                url = URL(base + path, encoded=True)
                async with s.get(url, headers=headers) as response:
                    body = await response.json(content_type=None)
                    body.pop("request_id", None)
                    answers.append((response.status, body))
        assert answers[0] == answers[1]
    finally:
        await relay.stop()
