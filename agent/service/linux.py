"""`bridgehead service install | uninstall` on Linux: the agent's systemd service
(`common.systemd_service`), with the config's private keys (the tunnel's, the local
listener's) handed to the service user, and the folder of the tunnel's certificate and key
writable to it, since the agent renews them itself. That folder must not be the config's own:
the service would then be able to rewrite its config.
"""

from __future__ import annotations

from pathlib import Path

from bridgehead.agent.config.model import AgentConfig
from bridgehead.common.commands import Failure
from bridgehead.common.service_steps import Step
from bridgehead.common.systemd_service import SystemdService

AGENT = SystemdService("bridgehead", "agent.yaml")
UNIT, CONFIG_FOLDER, STATE_FOLDER = AGENT.unit, AGENT.config_folder, AGENT.state_folder


def unit_text(executable: Path, config: Path) -> str:
    return AGENT.unit_text(executable, config)


def unreachable(config_file: Path) -> str | None:
    return AGENT.unreachable(config_file)


def install_plan(config_file: Path, config: AgentConfig, executable: Path) -> list[Step]:
    return AGENT.install_plan(
        config_file, _private_keys(config), executable, renewed_folders(config_file, config)
    )


def renewed_folders(config_file: Path, config: AgentConfig) -> list[Path]:
    """The folders the agent replaces its tunnel certificate and key in; Failure when one is
    the config's own folder."""
    if config.tunnel is None:
        return []
    folders = sorted({config.tunnel.cert.parent, config.tunnel.key.parent})
    if config_file.parent in folders:
        raise Failure(
            f"the tunnel's certificate and key lie in {config_file.parent}, beside the config; "
            "the agent renews them, so the service would need to write there: move them to "
            f"a folder of their own ({config_file.parent / 'certs'}, as `bridgehead enroll` "
            "does) and change the tunnel: section"
        )
    return folders


def uninstall_plan(*, purge: bool) -> list[Step]:
    return AGENT.uninstall_plan(purge=purge)


def _private_keys(config: AgentConfig) -> list[Path]:
    keys = []
    if config.tunnel is not None:
        keys.append(config.tunnel.key)
    if config.listen is not None and config.listen.tls is not None:
        keys.append(config.listen.tls.key)
    return keys
