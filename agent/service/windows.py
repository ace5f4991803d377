"""`bridgehead service install | uninstall | status` on Windows: the plan, as steps.

Install: `%ProgramData%\\Bridgehead` (agent.yaml, `state`, `logs`); the `Bridgehead` service,
started automatically after boot (delayed auto-start); the folder made readable only by
SYSTEM, Administrators and the service account (its inherited "Users may read" entry
removed, because the config holds secrets) and writable by the service only in `state` and
`logs`; recovery: restart on failure after 5 s, 30 s and 60 s (the count reset after a
day); then the service started.

The account defaults to the virtual account `NT SERVICE\\Bridgehead`: it needs no password,
is made and managed by Windows, and has a SID of its own, so the folder's ACL can grant
this service, and no other, the config and state (LocalService is shared by many services,
any of which could then read them). `--account NAME` runs it as a domain or local account
instead (password read from stdin).

Every service-control call goes through a `ServiceManager` (`Win32ServiceManager` on
Windows, a fake in tests); the steps here are data, printed for `--dry-run`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bridgehead.common.service_steps import (
    MakeFolder,
    Remove,
    Run,
    Step,
    WriteFile,
)

NAME = "Bridgehead"
DISPLAY_NAME = "Bridgehead gateway agent"
DESCRIPTION = "Serves legacy databases as authenticated HTTP APIs through an outbound tunnel."
DEFAULT_ACCOUNT = rf"NT SERVICE\{NAME}"
RESTART_DELAYS = (5, 30, 60)
"""Seconds before each restart after a failure (the third applies to every later one)."""
RESET_AFTER = 24 * 3600
"""Seconds without failure after which the failure count starts again."""
PASSWORDLESS = ("NT SERVICE\\", "NT AUTHORITY\\")
_SYSTEM, _ADMINS = "*S-1-5-18", "*S-1-5-32-544"  # SIDs, so any Windows language works


def data_folder(environ: Mapping[str, str] | None = None) -> Path:
    """`%ProgramData%\\Bridgehead`: config, state and logs."""
    env = os.environ if environ is None else environ
    return Path(env.get("ProgramData", r"C:\ProgramData")) / NAME


def unreachable(config_file: Path, folder: Path) -> str | None:
    """Why the service should not run with `config_file` where it is, or None: outside
    `folder` its ACL is not the one install sets (the account may not read it, or others
    may)."""
    if config_file.is_relative_to(folder):
        return None
    return (
        f"{config_file} is outside {folder}, whose ACL lets only the service account read "
        f"the config; move the config and its certificates there"
    )


def needs_password(account: str) -> bool:
    """Virtual and built-in service accounts have no password; other accounts do."""
    return not account.upper().startswith(PASSWORDLESS) and account.lower() != "localsystem"


@dataclass(frozen=True)
class ServiceSpec:
    """What the service control manager is told about the service."""

    name: str
    display_name: str
    description: str
    account: str
    config_file: Path
    delayed_start: bool = True


class ServiceManager(Protocol):
    """The Windows service control manager, as far as Bridgehead uses it."""

    def create(self, spec: ServiceSpec, password: str | None) -> None: ...

    def configure_recovery(self, name: str, delays: Sequence[int], reset_after: int) -> None: ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str) -> None:
        """Ask the service to stop and wait until it has (its drain included)."""

    def delete(self, name: str) -> None: ...

    def query(self, name: str) -> str | None:
        """The state (`RUNNING`, `STOPPED`, `STOP_PENDING`...), or None when not installed."""

    def run_command(self, argv: Sequence[str]) -> None:
        """A Windows command (icacls); its failure raises RuntimeError."""


@dataclass(frozen=True)
class CreateService:
    spec: ServiceSpec

    def describe(self) -> str:
        s = self.spec
        start = "delayed auto-start" if s.delayed_start else "auto-start"
        return (f"create service {s.name} ({s.display_name!r}), {start}, account {s.account},"
                f" config {s.config_file}; logs to the event log source {s.name}")  # fmt: skip


@dataclass(frozen=True)
class ConfigureRecovery:
    name: str
    delays: tuple[int, ...]
    reset_after: int

    def describe(self) -> str:
        after = ", ".join(f"{d} s" for d in self.delays)
        return (f"configure recovery of {self.name}: restart on failure after {after};"
                f" reset the failure count after {self.reset_after} s")  # fmt: skip


@dataclass(frozen=True)
class ControlService:
    action: str  # "start" | "stop" | "delete"
    name: str

    def describe(self) -> str:
        return f"{self.action} service {self.name}"


WindowsStep = Step | CreateService | ConfigureRecovery | ControlService


def install_plan(folder: Path, config_file: Path, account: str) -> list[WindowsStep]:
    """Every step of installing the service for `config_file` (under `folder`, usually)."""
    state, logs = folder / "state", folder / "logs"
    spec = ServiceSpec(NAME, DISPLAY_NAME, DESCRIPTION, account, config_file)
    return [
        MakeFolder(folder, 0o750),
        MakeFolder(state, 0o700),
        MakeFolder(logs, 0o750),
        CreateService(spec),  # first: `NT SERVICE\Bridgehead` resolves once the service exists
        Run(("icacls", str(folder), "/inheritance:r", "/grant:r", f"{_SYSTEM}:(OI)(CI)F",
             f"{_ADMINS}:(OI)(CI)F", f"{account}:(OI)(CI)RX")),
        Run(("icacls", str(state), "/grant", f"{account}:(OI)(CI)M")),
        Run(("icacls", str(logs), "/grant", f"{account}:(OI)(CI)M")),
        ConfigureRecovery(NAME, RESTART_DELAYS, RESET_AFTER),
        ControlService("start", NAME),
    ]  # fmt: skip


def uninstall_plan(folder: Path, *, purge: bool) -> list[WindowsStep]:
    """Stop (draining) and remove the service; the folder goes only with `purge`."""
    steps: list[WindowsStep] = [ControlService("stop", NAME), ControlService("delete", NAME)]
    if purge:
        steps.append(Remove(folder))
    return steps


def carry_out_windows(
    steps: Sequence[WindowsStep],
    manager: ServiceManager,
    password: str | None = None,
) -> None:
    """Service steps and commands go to `manager`; folders are made or removed where they
    are named (ACLs, not modes, protect them on Windows: the icacls steps)."""
    controls: dict[str, Callable[[str], None]] = {
        "start": manager.start, "stop": lambda name: _stop_if_running(manager, name),
        "delete": lambda name: _delete_if_present(manager, name),
    }  # fmt: skip
    for step in steps:
        match step:
            case CreateService(spec=spec):
                manager.create(spec, password)
            case ConfigureRecovery(name=name, delays=delays, reset_after=reset):
                manager.configure_recovery(name, delays, reset)
            case ControlService(action=action, name=name):
                controls[action](name)
            case MakeFolder(path=path):
                path.mkdir(parents=True, exist_ok=True)
            case Remove(path=path):
                shutil.rmtree(path, ignore_errors=True)
            case Run(argv=argv):
                manager.run_command(argv)
            case WriteFile():
                raise AssertionError("the Windows plan writes no files")


def _stop_if_running(manager: ServiceManager, name: str) -> None:
    if manager.query(name) not in (None, "STOPPED"):
        manager.stop(name)


def _delete_if_present(manager: ServiceManager, name: str) -> None:
    if manager.query(name) is not None:
        manager.delete(name)
