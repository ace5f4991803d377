# Item 3 of the security review: one agent id has one group at a time on the relay. A second
# CA-issued certificate for the same id naming another group is refused while the id has
# live links, and a caller is authorised on the link that actually serves its request.
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import Caller
from polling import wait_for
from relaysec_kit import RIVAL, links_of, start_agent, start_relay
from tunnelkit import Pki


async def test_a_certificate_naming_another_group_for_a_live_id_is_refused(
    pki: Pki, run_agent: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With plant-7 connected in group `rivals`, a second plant-7 certificate naming `plants`
    is refused and logged with both serials; no caller reaches the refused agent's data."""
    caplog.set_level(logging.INFO, logger="bridgehead.relay")
    relay = await start_relay(pki)
    try:
        await start_agent(
            pki, relay, run_agent, tmp_path / "a", name="rogue", group="rivals", api_key=RIVAL
        )
        await wait_for(lambda: links_of(relay) == 1)
        await start_agent(
            pki, relay, run_agent, tmp_path / "b", name="real", group="plants", connections=2
        )
        await wait_for(lambda: "names group plants" in caplog.text)
        context = await asyncio.to_thread(pki.caller_context)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
            rival = Caller(f"{relay.callers_url}/agents/plant-7", RIVAL, s)
            answers = [await rival.get(f"/v1/t/{i}") for i in range(1, 21)]
        # Each answer comes from the agent whose certificate put plant-7 in `rivals`.
        assert [(status, body.get("name")) for status, _, body in answers] == [(200, "rogue")] * 20
        assert links_of(relay) == 1
        refusal = next(r for r in caplog.records if "names group plants" in r.getMessage())
        serials = [f"{link.serial:x}" for link in relay.registry.links()]
        assert f"certificate serial {serials[0]}" in refusal.getMessage()
        assert "refused" in refusal.getMessage()
    finally:
        await relay.stop()


async def test_a_caller_allowed_only_a_group_is_refused_an_agent_of_another_group(
    pki: Pki, run_agent: Any, tmp_path: Path
) -> None:
    """A caller allowed only group `rivals` gets 403 for plant-7 in group `plants`, by id and
    by group, on every request."""
    relay = await start_relay(pki)
    try:
        await start_agent(pki, relay, run_agent, tmp_path / "a", name="real", connections=2)
        await wait_for(lambda: links_of(relay) == 2)
        context = await asyncio.to_thread(pki.caller_context)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
            by_id = Caller(f"{relay.callers_url}/agents/plant-7", RIVAL, s)
            by_group = Caller(f"{relay.callers_url}/groups/plants", RIVAL, s)
            statuses = [(await by_id.get("/v1/t/1"))[0] for _ in range(10)]
            statuses += [(await by_group.get("/v1/t/1"))[0] for _ in range(10)]
        assert statuses == [403] * 20
    finally:
        await relay.stop()
