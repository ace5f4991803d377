"""`bridgehead service install | uninstall` on Linux: the plan, as steps (agent.service.steps).

Install: a `bridgehead` system user; `/etc/bridgehead` (0750 root:bridgehead) with the
config readable by the group (0640); the config's private keys owned by the service user
(0600, as the agent insists); the unit from `packaging/linux/bridgehead.service` with this
installation's executable and config; then `systemctl enable --now`. State and keys the
agent makes live in `/var/lib/bridgehead` (systemd's `StateDirectory`, 0700), which the
agent uses when the config sets no `state_dir`. Uninstall stops and removes the unit and
keeps config and state unless `--purge`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.service.steps import MakeFolder, Remove, Run, Step, WriteFile

USER = "bridgehead"
UNIT = Path("/etc/systemd/system/bridgehead.service")
CONFIG_FOLDER = Path("/etc/bridgehead")
STATE_FOLDER = Path("/var/lib/bridgehead")
HIDDEN = {
    Path("/home"): "in a home folder, which the service cannot read (ProtectHome)",
    Path("/root"): "in a home folder, which the service cannot read (ProtectHome)",
    Path("/tmp"): "in /tmp, which the service sees as its own empty folder (PrivateTmp)",  # noqa: S108
    Path("/var/tmp"): "in /var/tmp, which the service sees as its own empty folder",  # noqa: S108
}


def unit_text(executable: Path, config: Path) -> str:
    template = files("bridgehead.packaging").joinpath("linux/bridgehead.service").read_text()
    return template.replace(
        "ExecStart=/usr/bin/bridgehead run -c /etc/bridgehead/agent.yaml",
        f"ExecStart={executable} run -c {config}",
    )


def unreachable(config_file: Path) -> str | None:
    """Why the service could not read `config_file` where it is, or None."""
    for folder, why in HIDDEN.items():
        if config_file.is_relative_to(folder):
            return (
                f"{config_file} is {why}; move the config and its certificates to {CONFIG_FOLDER}"
            )
    return None


def install_plan(config_file: Path, config: AgentConfig, executable: Path) -> list[Step]:
    """Every step of installing the service for `config_file` (an absolute path)."""
    nologin = "/usr/sbin/nologin"
    steps: list[Step] = [
        Run(("useradd", "--system", "--home-dir", str(STATE_FOLDER), "--shell", nologin,
             "--user-group", USER), unless=("id", "-u", USER)),
        MakeFolder(CONFIG_FOLDER, 0o750),
        Run(("chown", f"root:{USER}", str(CONFIG_FOLDER))),
        Run(("chown", f"root:{USER}", str(config_file))),
        Run(("chmod", "0640", str(config_file))),
    ]  # fmt: skip
    for key in _private_keys(config):
        steps += [Run(("chown", f"{USER}:{USER}", str(key))), Run(("chmod", "0600", str(key)))]
    steps += [
        WriteFile(UNIT, unit_text(executable, config_file), 0o644),
        Run(("systemctl", "daemon-reload")),
        Run(("systemctl", "enable", "--now", "bridgehead.service")),
    ]
    return steps


def uninstall_plan(*, purge: bool) -> list[Step]:
    steps: list[Step] = [
        Run(("systemctl", "disable", "--now", "bridgehead.service")),
        Remove(UNIT),
        Run(("systemctl", "daemon-reload")),
    ]
    if purge:
        steps += [Remove(STATE_FOLDER), Remove(CONFIG_FOLDER),
                  Run(("userdel", USER), unless=("sh", "-c", f"! id -u {USER}"))]  # fmt: skip
    return steps


def _private_keys(config: AgentConfig) -> list[Path]:
    keys = []
    if config.tunnel is not None:
        keys.append(config.tunnel.key)
    if config.listen is not None and config.listen.tls is not None:
        keys.append(config.listen.tls.key)
    return keys
