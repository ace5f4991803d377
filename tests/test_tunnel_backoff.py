# Reconnect delays: the pure backoff rule (exponential ceiling, full jitter, cap, reset), and
# the tunnel client using the configured base and cap while the relay is unreachable; the
# client's certificate watch outlives a certificate file that is briefly missing.
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agentproc import free_port
from tunnelkit import Pki, tunnel_section

from bridgehead.agent.config.model import TunnelConfig
from bridgehead.agent.tunnel.client import TunnelClient
from bridgehead.common.tunnel.backoff import Backoff


def test_the_ceiling_doubles_up_to_the_cap_and_the_draw_is_full_jitter() -> None:
    """Each delay is drawn between 0 and base * 2^attempt, never above the cap; a reset
    starts again from base."""
    asked: list[tuple[float, float]] = []

    def top(low: float, high: float) -> float:
        asked.append((low, high))
        return high

    backoff = Backoff(base=0.5, cap=3.0, draw=top)
    delays = [backoff.next_delay() for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert all(low == 0.0 for low, _ in asked)  # full jitter: anywhere from zero
    backoff.reset()
    assert backoff.next_delay() == 0.5


class Enough(Exception):
    """Raised by the test's sleep once enough redials were seen."""


async def test_the_client_waits_as_configured_while_the_relay_is_unreachable(pki: Pki) -> None:
    """With nothing listening at the relay's address, every redial waits a delay drawn
    under the configured ceiling (base 0.05 s doubling, cap 0.2 s), and the client keeps
    dialling rather than giving up."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7")
    section = tunnel_section(pki, free_port(), cert, key, backoff={"base": "50ms", "cap": "200ms"})
    config = TunnelConfig.model_validate(section)
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 8:
            raise Enough

    no_pipeline: Any = None  # never reached: no connection is ever made
    client = TunnelClient(config, no_pipeline, max_body=1024, sleep=sleep)
    with pytest.raises(Enough):
        await client._keep(0)
    assert len(delays) == 8
    ceilings = [0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert client.status.last_error is not None
    assert client.status.last_error.startswith("ConnectionRefusedError")


async def test_the_certificate_watch_outlives_a_missing_file(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate file missing for a while is logged once, the watch goes on, and the
    replaced file is then seen as a renewal."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7")
    config = TunnelConfig.model_validate(tunnel_section(pki, free_port(), cert, key))
    kept = await asyncio.to_thread(cert.read_bytes)
    checks: list[int] = []
    no_pipeline: Any = None

    async def sleep(delay: float) -> None:
        checks.append(len(checks))
        if len(checks) == 1:
            await asyncio.to_thread(cert.unlink)
        elif len(checks) == 4:
            await asyncio.to_thread(cert.write_bytes, kept)
        elif len(checks) == 6:
            client.stopping = True

    client = TunnelClient(config, no_pipeline, max_body=1024, sleep=sleep)
    renewed: list[bool] = []
    rotate = client.rotate_if_renewed

    async def counted() -> bool:
        renewed.append(await rotate())
        return renewed[-1]

    client.rotate_if_renewed = counted  # type: ignore[method-assign]
    with caplog.at_level("INFO", logger="bridgehead.tunnel"):
        await client._watch_certificates()
    assert len(checks) == 6  # it kept watching
    warnings = [r for r in caplog.records if "cannot read the certificate files" in r.message]
    assert len(warnings) == 1
    assert any("readable again" in r.message for r in caplog.records)
    assert True in renewed  # the replaced file counts as a renewal
