"""`bridgehead service install | uninstall` on Linux: the agent's systemd service
(`common.systemd_service`), with the config's private keys (the tunnel's, the local
listener's) handed to the service user.
"""

from __future__ import annotations

from pathlib import Path

from bridgehead.agent.config.model import AgentConfig
from bridgehead.common.service_steps import Step
from bridgehead.common.systemd_service import SystemdService

AGENT = SystemdService("bridgehead", "agent.yaml")
UNIT, CONFIG_FOLDER, STATE_FOLDER = AGENT.unit, AGENT.config_folder, AGENT.state_folder


def unit_text(executable: Path, config: Path) -> str:
    return AGENT.unit_text(executable, config)


def unreachable(config_file: Path) -> str | None:
    return AGENT.unreachable(config_file)


def install_plan(config_file: Path, config: AgentConfig, executable: Path) -> list[Step]:
    return AGENT.install_plan(config_file, _private_keys(config), executable)


def uninstall_plan(*, purge: bool) -> list[Step]:
    return AGENT.uninstall_plan(purge=purge)


def _private_keys(config: AgentConfig) -> list[Path]:
    keys = []
    if config.tunnel is not None:
        keys.append(config.tunnel.key)
    if config.listen is not None and config.listen.tls is not None:
        keys.append(config.listen.tls.key)
    return keys
