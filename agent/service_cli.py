"""`bridgehead service install | uninstall | status [--dry-run]`: the agent as a system
service (systemd on Linux; Windows comes with its own manager).

`--dry-run` prints every file and command of the plan and changes nothing. `install` and
`uninstall` need root; `status` summarises the unit's state and, when the admin listener is
on, the agent's own readiness.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TextIO

from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.agent.service import linux
from bridgehead.agent.service.steps import Step, carry_out
from bridgehead.common.commands import Failure, UsageError, load_config_or_refuse

DEFAULT_CONFIG = linux.CONFIG_FOLDER / "agent.yaml"


def service_command(action: str, config: Path | None, dry_run: bool, purge: bool,
                    out: TextIO) -> int:  # fmt: skip
    if not sys.platform.startswith("linux"):
        raise UsageError("service install here supports Linux with systemd only")
    if action == "status":
        return _status(config or DEFAULT_CONFIG, out)
    config_file = (config or DEFAULT_CONFIG).resolve()
    steps = _plan(action, config_file, purge)
    problem = linux.unreachable(config_file) if action == "install" else None
    if dry_run:
        lines = [f"problem: {problem}"] if problem else []
        print("\n".join(lines + [step.describe() for step in steps]), file=out)
        return 0
    if problem:
        raise UsageError(problem)
    if os.geteuid() != 0:
        raise UsageError(f"service {action} changes the system: run it as root (sudo)")
    try:
        carry_out(steps)
    except (RuntimeError, OSError) as exc:
        raise Failure(f"service {action} stopped part-way: {exc}") from None
    print(f"service {action}: done", file=out)
    return 0


def _plan(action: str, config_file: Path, purge: bool) -> list[Step]:
    if action == "uninstall":
        return linux.uninstall_plan(purge=purge)
    config: AgentConfig = load_config_or_refuse(load_config, config_file)
    return linux.install_plan(config_file, config, _executable())


def _executable() -> Path:
    found = shutil.which("bridgehead") or str(Path(sys.executable).parent / "bridgehead")
    return Path(found).resolve()


def _status(config_file: Path, out: TextIO) -> int:
    shown = subprocess.run(
        ["systemctl", "show", "bridgehead.service",  # noqa: S607 - systemctl from PATH
         "--property=ActiveState,SubState,StatusText,NRestarts"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if shown.returncode != 0:
        raise Failure(f"systemctl cannot tell: {shown.stderr.strip() or 'no systemd here'}")
    print(shown.stdout.strip(), file=out)
    ready = _readiness(config_file)
    print(f"readiness: {ready}", file=out)
    return 0


def _readiness(config_file: Path) -> str:
    try:
        config = load_config(config_file)
    except Exception as exc:
        return f"unknown (the config does not load: {exc})"
    if config.admin is None:
        return "unknown (admin: is off in the config)"
    address, token = config.admin.address, config.admin.token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    request = urllib.request.Request(f"http://{address}/readyz", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310 - the admin
            return json.dumps(json.load(response))
    except urllib.error.HTTPError as exc:
        return exc.read().decode(errors="replace")
    except OSError as exc:
        return f"not answering on {address} ({exc})"
