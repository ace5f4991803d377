"""`bridgehead service install | uninstall --dry-run` and the Linux plan: every file and
command is shown and nothing changes; carried out under a scratch root (commands recorded,
not run) it writes the unit systemd verifies; a config the service could not see is refused;
under systemd the agent keeps its state in `$STATE_DIRECTORY`."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from bridgehead.agent.config import load_config
from bridgehead.agent.service import linux
from bridgehead.common.service_steps import carry_out

BRIDGEHEAD = [sys.executable, "-m", "bridgehead.agent.cli"]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.close()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({"sources": {"db": {"sqlite": "t.db"}}, "admin": None}))
    return path


def test_dry_run_shows_the_plan_and_changes_nothing(config_file: Path) -> None:
    """The dry run lists the user, the folders, the permissions, the unit with this
    installation's ExecStart, and systemctl; it says the service could not see a config in
    /tmp; no unit file appears."""
    result = subprocess.run(
        [*BRIDGEHEAD, "service", "install", "-c", str(config_file), "--dry-run"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"problem: {config_file} is in /tmp")
    for expected in (
        "run useradd --system", "make folder /etc/bridgehead (mode 0750)",
        f"run chmod 0640 {config_file}", "write /etc/systemd/system/bridgehead.service",
        f"run -c {config_file}", "| Type=notify", "run systemctl enable --now bridgehead.service",
    ):  # fmt: skip
        assert expected in out, expected
    assert not linux.UNIT.exists() or "bridgehead" not in linux.UNIT.read_text()


def test_install_refuses_a_config_the_service_cannot_see(config_file: Path) -> None:
    """Without --dry-run a config in /tmp (PrivateTmp) is refused before anything changes."""
    result = subprocess.run(
        [*BRIDGEHEAD, "service", "install", "-c", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "which the service sees as its own empty folder (PrivateTmp)" in result.stderr


def test_the_plan_carried_out_under_a_scratch_root(config_file: Path, tmp_path: Path) -> None:
    """Install then uninstall --purge under a scratch root: the unit is written there (and
    verifies), the commands run in order, the user is made only if missing."""
    root = tmp_path / "root"
    ran: list[Sequence[str]] = []
    config = load_config(config_file)
    target = Path("/etc/bridgehead/agent.yaml")
    executable = Path(shutil.which("bridgehead") or sys.executable)
    install = linux.install_plan(target, config, executable)

    carry_out(install, root, run=ran.append, check=lambda argv: argv[0] == "id")

    unit = root / "etc/systemd/system/bridgehead.service"
    assert f"ExecStart={executable} run -c /etc/bridgehead/agent.yaml" in unit.read_text()
    assert (root / "etc/bridgehead").stat().st_mode & 0o777 == 0o750
    assert [a[0] for a in ran] == ["chown", "chown", "chmod", "systemctl", "systemctl"]
    assert ran[-1] == ("systemctl", "enable", "--now", "bridgehead.service")
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
        assert verify.returncode == 0, verify.stderr

    ran.clear()
    carry_out(linux.uninstall_plan(purge=True), root, run=ran.append, check=lambda argv: False)
    assert not unit.exists()
    assert not (root / "etc/bridgehead").exists()
    assert ("userdel", "bridgehead") in ran


def test_under_systemd_state_goes_to_the_state_directory(config_file: Path, tmp_path: Path) -> None:
    """A config without state_dir keeps its state in $STATE_DIRECTORY when systemd gives
    one (the config's own folder is read-only under ProtectSystem=strict)."""
    given = tmp_path / "var-lib-bridgehead"
    config = load_config(config_file, environ={"STATE_DIRECTORY": str(given)})
    assert config.state_path == given
    assert load_config(config_file, environ={}).state_path == config_file.parent / "state"
