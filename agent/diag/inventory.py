"""What `bridgehead diag` gathers besides the config and the tunnel: versions, the ODBC
driver inventory, a probe of every source, the last log lines and the running agent's status.

Each gatherer returns text or JSON-ready data and never raises for what it cannot reach:
the bundle says what was missing instead (the agent need not be running). Blocking work
(files, subprocesses, pyodbc) runs in threads.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
import shutil
import subprocess
import sys
from collections import deque
from typing import Any

import aiohttp

from bridgehead.adapters.probe import probe
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.sources import build_adapters

LOG_LINES = 500
PROBE_SECONDS = 5.0
STATUS_SECONDS = 3.0


def versions() -> dict[str, Any]:
    packages = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()}
    return {
        "bridgehead": importlib.metadata.version("bridgehead"),
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "packages": dict(sorted(packages.items(), key=lambda item: str(item[0]).lower())),
    }


def odbc_drivers() -> str:
    """`odbcinst -q -d` (unixODBC's driver list) and what pyodbc sees."""
    parts = []
    tool = shutil.which("odbcinst")
    if tool is None:
        parts.append("odbcinst: not installed (Debian package unixodbc)")
    else:
        try:
            done = subprocess.run(  # noqa: S603 - a fixed command line
                [tool, "-q", "-d"], capture_output=True, text=True, timeout=10, check=False
            )
            parts.append(f"odbcinst -q -d (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            parts.append(f"odbcinst -q -d: could not run: {exc}")
    try:
        import pyodbc  # noqa: PLC0415 - optional: SQLite-only agents run without unixODBC

        parts.append("pyodbc.drivers():\n" + "".join(f"{d}\n" for d in pyodbc.drivers()))
    except ImportError as exc:
        parts.append(f"pyodbc: cannot be imported ({exc}); install unixODBC (libodbc2)")
    return "\n".join(parts)


async def probes(config: AgentConfig, seconds: float = PROBE_SECONDS) -> dict[str, Any]:
    """Each source's probe through its real adapter: ok with latency, or the reason."""
    adapters = build_adapters(config)
    try:
        results = await asyncio.gather(*(probe(a, seconds) for a in adapters.values()))
    finally:
        await asyncio.gather(*(a.close() for a in adapters.values()), return_exceptions=True)
    return {
        name: {"ok": r.ok, "latency_ms": round(r.latency * 1000, 1), "error": r.error}
        for name, r in zip(adapters, results, strict=True)
    }


def last_log_lines(config: AgentConfig, count: int = LOG_LINES) -> str:
    file = config.logging.file
    if file is None:
        return (
            "logging.file is not set: the agent logs to stderr (as a service: "
            "journalctl -u bridgehead, or the Windows event log)\n"
        )
    try:
        with file.open(encoding="utf-8", errors="replace") as lines:
            return "".join(deque(lines, maxlen=count))
    except OSError as exc:
        return f"cannot read the log file {file}: {exc.strerror or exc}\n"


async def agent_status(config: AgentConfig, seconds: float = STATUS_SECONDS) -> Any:
    """The running agent's /status.json, or why it could not be had."""
    if config.admin is None:
        return {"agent": "no admin listener configured (admin:), so no status"}
    headers = {}
    if config.admin.token is not None:
        headers["Authorization"] = f"Bearer {config.admin.token.get_secret_value()}"
    url = f"http://{config.admin.address}/status.json"
    try:
        timeout = aiohttp.ClientTimeout(total=seconds)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status == 401:
                return {"agent": "running, but its admin listener wants a token this config "
                        "does not hold (admin.token_sha256 only)"}  # fmt: skip
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {"agent": "not running", "admin": str(config.admin.address)}
