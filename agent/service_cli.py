"""`bridgehead service install | uninstall | status [--dry-run]`: the agent as a system
service: systemd on Linux (`service.linux`), the service control manager on Windows
(`service.windows`, through a `ServiceManager`); any other platform is refused in one sentence.

`--dry-run` prints every file and command of the plan and changes nothing. `install` and
`uninstall` need root (an Administrator on Windows); `status` summarises the service's state
and, when the admin listener is on, the agent's own readiness.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.agent.service import linux, windows
from bridgehead.common.commands import Failure, UsageError, load_config_or_refuse
from bridgehead.common.service_steps import Step, perform

DEFAULT_CONFIG = linux.CONFIG_FOLDER / "agent.yaml"


def current_platform() -> str:
    return "windows" if sys.platform == "win32" else sys.platform.rstrip("0123456789")


def service_command(action: str, config: Path | None, dry_run: bool, purge: bool,
                    out: TextIO, *, platform: str | None = None, account: str | None = None,
                    stdin: TextIO = sys.stdin,
                    manager: windows.ServiceManager | None = None) -> int:  # fmt: skip
    """`platform` (linux, windows) defaults to this machine's; `manager` to pywin32's."""
    target = platform or current_platform()
    if target == "windows":
        request = WindowsRequest(action, config, dry_run, purge, account or windows.DEFAULT_ACCOUNT)
        return _windows(request, out, stdin, manager)
    if target != "linux":
        raise UsageError(
            f"bridgehead service supports Linux (systemd) and Windows; this is {target}: "
            "run `bridgehead run -c agent.yaml` under this system's own service manager"
        )
    if account is not None:
        raise UsageError("--account is for Windows; on Linux the service user is bridgehead")
    if action == "status":
        return _status(config or DEFAULT_CONFIG, out)
    config_file = (config or DEFAULT_CONFIG).resolve()
    steps = _plan(action, config_file, purge)
    problem = linux.unreachable(config_file) if action == "install" else None
    print(perform(action, steps, problem, dry_run=dry_run), file=out)
    return 0


def _plan(action: str, config_file: Path, purge: bool) -> list[Step]:
    if action == "uninstall":
        return linux.uninstall_plan(purge=purge)
    config: AgentConfig = load_config_or_refuse(load_config, config_file)
    return linux.install_plan(config_file, config, linux.AGENT.executable())


def _status(config_file: Path, out: TextIO) -> int:
    print(linux.AGENT.unit_state(), file=out)
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


@dataclass(frozen=True)
class WindowsRequest:
    action: str
    config: Path | None
    dry_run: bool
    purge: bool
    account: str


def _windows(
    request: WindowsRequest, out: TextIO, stdin: TextIO, manager: windows.ServiceManager | None
) -> int:
    folder = windows.data_folder()
    config_file = (request.config or folder / "agent.yaml").absolute()
    scm = manager or _win32_manager()
    if scm is None and not request.dry_run:
        raise UsageError("the Windows service is managed on Windows; --dry-run shows its plan")
    if request.action == "status":
        state = scm.query(windows.NAME) if scm is not None else "unknown (dry run)"
        print(f"service {windows.NAME}: {state or 'not installed'}", file=out)
        print(f"readiness: {_readiness(config_file)}", file=out)
        return 0
    steps, problem = _windows_plan(request, folder, config_file)
    if request.dry_run or scm is None:
        lines = [f"problem: {problem}"] if problem else []
        print("\n".join(lines + [step.describe() for step in steps]), file=out)
        return 0
    if problem:
        raise UsageError(problem)
    password = None
    if request.action == "install" and windows.needs_password(request.account):
        password = read_password(request.account, stdin)
    try:
        windows.carry_out_windows(steps, scm, password)
    except (RuntimeError, OSError) as exc:
        raise Failure(f"service {request.action} stopped part-way: {exc}") from None
    print(f"service {request.action}: done", file=out)
    return 0


def _windows_plan(
    request: WindowsRequest, folder: Path, config_file: Path
) -> tuple[list[windows.WindowsStep], str | None]:
    """The steps, and why installing with this config would be wrong (or None)."""
    if request.action == "uninstall":
        return windows.uninstall_plan(folder, purge=request.purge), None
    load_config_or_refuse(load_config, config_file)
    steps = windows.install_plan(folder, config_file, request.account)
    return steps, windows.unreachable(config_file, folder)


def _win32_manager() -> windows.ServiceManager | None:
    """pywin32's service control manager; None off Windows (a dry run needs none)."""
    if os.name != "nt":
        return None
    from bridgehead.agent.service.win32 import Win32ServiceManager  # noqa: PLC0415 - Windows

    return Win32ServiceManager()  # pragma: no cover - Windows only


def read_password(account: str, stdin: TextIO) -> str:
    """The account's password: typed without echo at a console, else one line of stdin."""
    if stdin.isatty():  # pragma: no cover - needs a console
        password = getpass.getpass(f"password for {account}: ")
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError(f"--account {account} needs its password on stdin")
    return password
