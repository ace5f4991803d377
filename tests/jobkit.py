# What the job tests share: start a run through the API and wait for its final report.
from __future__ import annotations

import asyncio
from typing import Any

from conftest import Caller


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
