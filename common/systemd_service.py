"""A Bridgehead program (the agent or the relay) as a systemd service: the install and
uninstall plans, as steps (`common.service_steps`), for one shipped unit file.

Install: a system user named after the service; `/etc/NAME` (0750 root:NAME) with the config
readable by the group (0640); the config's private keys owned by the service user (0600, as
both programs insist); the unit from `packaging/linux/NAME.service` with this installation's
executable and config; then `systemctl enable` and `restart` (a service already running
restarts, with drain, under the new unit). State lives in `/var/lib/NAME`
(systemd's `StateDirectory`, 0700), which the program uses when its config sets no
`state_dir`. Uninstall stops and removes the unit and keeps config and state unless purged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from bridgehead.common.commands import Failure
from bridgehead.common.service_steps import MakeFolder, Remove, Run, Step, WriteFile

HIDDEN = {
    Path("/home"): "in a home folder, which the service cannot read (ProtectHome)",
    Path("/root"): "in a home folder, which the service cannot read (ProtectHome)",
    Path("/tmp"): "in /tmp, which the service sees as its own empty folder (PrivateTmp)",  # noqa: S108
    Path("/var/tmp"): "in /var/tmp, which the service sees as its own empty folder",  # noqa: S108
}


@dataclass(frozen=True)
class SystemdService:
    name: str
    """The unit, the user and the folders' name: `bridgehead`, `bridgehead-relay`."""
    config_name: str
    """The config file's usual name in `/etc/NAME`."""

    @property
    def unit(self) -> Path:
        return Path(f"/etc/systemd/system/{self.name}.service")

    @property
    def config_folder(self) -> Path:
        return Path("/etc") / self.name

    @property
    def state_folder(self) -> Path:
        return Path("/var/lib") / self.name

    def executable(self) -> Path:
        """This installation's command of the same name (on PATH, or beside Python)."""
        beside = Path(sys.executable).parent / self.name
        return Path(shutil.which(self.name) or beside).resolve()

    def unit_state(self) -> str:
        """What systemd says of the unit: its states, status text and restarts."""
        shown = subprocess.run(  # noqa: S603 - fixed arguments, the unit's name is ours
            ["systemctl", "show", f"{self.name}.service",  # noqa: S607 - systemctl from PATH
             "--property=ActiveState,SubState,StatusText,NRestarts"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if shown.returncode != 0:
            raise Failure(f"systemctl cannot tell: {shown.stderr.strip() or 'no systemd here'}")
        return shown.stdout.strip()

    def unit_text(self, executable: Path, config: Path, writable: Sequence[Path] = ()) -> str:
        """The shipped unit with this installation's executable and config, and each of
        `writable` (folders where the program replaces its own files) added to the few the
        otherwise read-only file system lets it write."""
        shipped = files("bridgehead.packaging").joinpath(f"linux/{self.name}.service")
        usual = f"ExecStart=/usr/bin/{self.name} run -c {self.config_folder / self.config_name}"
        text = shipped.read_text().replace(usual, f"ExecStart={executable} run -c {config}")
        state = f"ReadWritePaths={self.state_folder}\n"
        more = "".join(f"ReadWritePaths={folder}\n" for folder in writable)
        return text.replace(state, state + more)

    def unreachable(self, config_file: Path) -> str | None:
        """Why the service could not read `config_file` where it is, or None."""
        for folder, why in HIDDEN.items():
            if config_file.is_relative_to(folder):
                return (
                    f"{config_file} is {why}; move the config and its certificates to "
                    f"{self.config_folder}"
                )
        return None

    def install_plan(
        self,
        config_file: Path,
        private_keys: Sequence[Path],
        executable: Path,
        writable: Sequence[Path] = (),
    ) -> list[Step]:
        """Every step of installing the service for `config_file` (an absolute path);
        `writable` are the folders the program replaces its own files in (the agent's
        renewed certificate and key), handed to the service user."""
        user, nologin = self.name, "/usr/sbin/nologin"
        steps: list[Step] = [
            Run(("useradd", "--system", "--home-dir", str(self.state_folder), "--shell",
                 nologin, "--user-group", user), unless=("id", "-u", user)),
            MakeFolder(self.config_folder, 0o750),
            Run(("chown", f"root:{user}", str(self.config_folder))),
            Run(("chown", f"root:{user}", str(config_file))),
            Run(("chmod", "0640", str(config_file))),
        ]  # fmt: skip
        owned = [(key, "0600") for key in private_keys] + [(folder, "0750") for folder in writable]
        for path, mode in owned:
            steps += [Run(("chown", f"{user}:{user}", str(path))), Run(("chmod", mode, str(path)))]
        return [
            *steps,
            WriteFile(self.unit, self.unit_text(executable, config_file, writable), 0o644),
            Run(("systemctl", "daemon-reload")),
            Run(("systemctl", "enable", f"{self.name}.service")),
            Run(("systemctl", "restart", f"{self.name}.service")),
        ]

    def uninstall_plan(self, *, purge: bool) -> list[Step]:
        steps: list[Step] = [
            Run(("systemctl", "disable", "--now", f"{self.name}.service")),
            Remove(self.unit),
            Run(("systemctl", "daemon-reload")),
        ]
        if purge:
            user = self.name
            steps += [Remove(self.state_folder), Remove(self.config_folder),
                      Run(("userdel", user), unless=("sh", "-c", f"! id -u {user}"))]  # fmt: skip
        return steps
