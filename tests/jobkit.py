# What the job tests share: start a run through the API and wait for its final report; an
# aiohttp app (a receiver, a file server) served on 127.0.0.1 for the run to talk to.
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from conftest import Caller


@contextlib.asynccontextmanager
async def on_loopback(app: web.Application) -> AsyncIterator[str]:
    """`app` served on 127.0.0.1, on a free port, for the block; its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def run_job(agent: Caller, name: str = "out", dry_run: bool = False) -> dict[str, Any]:
    """Start a run through the API and wait for its final report."""
    status, headers, started = await agent.send(
        "POST", f"/v1/jobs/{name}/runs", {"dry_run": dry_run}
    )
    assert status == 202, started
    assert headers["Location"] == f"/v1/jobs/{name}/runs/{started['id']}"
    report: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal report
        status, _, report = await agent.get(headers["Location"])
        assert status == 200, report
        return report["status"] != "running"

    deadline = asyncio.get_running_loop().time() + 120
    while not await ended():
        assert asyncio.get_running_loop().time() < deadline, report
        await asyncio.sleep(0.05)
    return report
