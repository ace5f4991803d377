"""Assembles the `bridgehead diag` zip: the redacted config (and its problems, if it does
not validate), versions, ODBC drivers, a probe of every source, the tunnel steps, the last
log lines and the running agent's status, with a summary on top.

Every file passes `Secrets.scrub` (agent.diag.redaction) on its way into the zip, whatever
gathered it. Works with the agent stopped, and with a config that does not validate (then
only what needs no valid config is gathered).
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.agent.diag import inventory
from bridgehead.agent.diag.redaction import Secrets, redacted_config
from bridgehead.agent.diag.tunnel import check_tunnel, failed_at, render
from bridgehead.common.config.document import ConfigError, read_text


def default_name(now: datetime) -> Path:
    return Path(f"bridgehead-diag-{now:%Y%m%dT%H%M%SZ}.zip")


@dataclass
class Contents:
    files: dict[str, str] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)

    def add_json(self, name: str, data: Any) -> None:
        self.files[name] = json.dumps(data, indent=2, default=str) + "\n"


async def build(config_file: Path, out: Path, now: datetime | None = None) -> Path:
    """Write the bundle for `config_file` to `out`; its path."""
    now = now or datetime.now(UTC)
    text = await asyncio.to_thread(read_text, config_file)  # ConfigError if unreadable
    config, problems = await asyncio.to_thread(_load, config_file)
    secrets = await asyncio.to_thread(Secrets.of, text, config_file, config)
    contents = Contents(summary=[f"bridgehead diag, {now.isoformat()}", f"config: {config_file}"])
    contents.files["config.yaml"] = redacted_config(text)
    if problems is not None:
        contents.files["config-problems.txt"] = problems + "\n"
        contents.summary.append("config: INVALID (see config-problems.txt)")
    contents.add_json("versions.json", await asyncio.to_thread(inventory.versions))
    contents.files["odbc-drivers.txt"] = await asyncio.to_thread(inventory.odbc_drivers)
    if config is not None:
        await _gather(config, contents)
    contents.summary.append("files: " + ", ".join(["summary.txt", *contents.files]))
    contents.files = {"summary.txt": "\n".join(contents.summary) + "\n", **contents.files}
    await asyncio.to_thread(_write, out, {n: secrets.scrub(t) for n, t in contents.files.items()})
    return out


def _load(config_file: Path) -> tuple[AgentConfig | None, str | None]:
    try:
        return load_config(config_file), None
    except ConfigError as exc:
        return None, str(exc)


async def _gather(config: AgentConfig, contents: Contents) -> None:
    probes = await inventory.probes(config)
    contents.add_json("probes.json", probes)
    for name, result in probes.items():
        verdict = "ok" if result["ok"] else f"FAILED: {result['error']}"
        contents.summary.append(f"sources.{name}: {verdict}")
    if config.tunnel is None:
        contents.files["tunnel.txt"] = "no tunnel: section in the config\n"
    else:
        steps = await check_tunnel(config.tunnel)
        contents.files["tunnel.txt"] = render(steps)
        where = failed_at(steps)
        contents.summary.append(f"tunnel: {'ok' if where is None else 'FAILED at ' + where}")
    contents.files["log.txt"] = await asyncio.to_thread(inventory.last_log_lines, config)
    status = await inventory.agent_status(config)
    contents.add_json("status.json", status)
    running = not (isinstance(status, dict) and "agent" in status)
    contents.summary.append(f"agent: {'running' if running else status['agent']}")


def _write(out: Path, files: dict[str, str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
