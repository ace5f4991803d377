"""`bridgehead-relay service install | uninstall | status [--dry-run]`: the relay as a
systemd service (`common.systemd_service`), its TLS key and CA key handed to the service
user. `--dry-run` prints every file and command and changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from bridgehead.common.commands import UsageError, load_config_or_refuse
from bridgehead.common.service_steps import Step, perform
from bridgehead.common.systemd_service import SystemdService
from bridgehead.relay.config import RelayConfig, load_relay_config

RELAY = SystemdService("bridgehead-relay", "relay.yaml")


def service_command(
    action: str, config: Path | None, dry_run: bool, purge: bool, out: TextIO
) -> int:
    if not sys.platform.startswith("linux"):
        raise UsageError("bridgehead-relay service runs on Linux with systemd")
    if action == "status":
        return _status(out)
    config_file = (config or RELAY.config_folder / RELAY.config_name).resolve()
    steps = _plan(action, config_file, purge)
    problem = RELAY.unreachable(config_file) if action == "install" else None
    print(perform(action, steps, problem, dry_run=dry_run), file=out)
    return 0


def _plan(action: str, config_file: Path, purge: bool) -> list[Step]:
    if action == "uninstall":
        return RELAY.uninstall_plan(purge=purge)
    config: RelayConfig = load_config_or_refuse(load_relay_config, config_file)
    keys = [config.tls.key, *([config.ca.key] if config.ca.key is not None else [])]
    return RELAY.install_plan(config_file, keys, RELAY.executable())


def _status(out: TextIO) -> int:
    print(RELAY.unit_state(), file=out)
    return 0
