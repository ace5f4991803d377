"""`bridgehead-relay service install | uninstall`: the relay's plan shown by --dry-run (its
own user, folders and unit; its TLS and CA keys handed to the service user), carried out
under a scratch root with the commands recorded, and its shipped unit verified by systemd."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bridgehead.common.service_steps import carry_out
from bridgehead.relay.service_cli import RELAY

UNIT = Path(__file__).parent.parent / "packaging" / "linux" / "bridgehead-relay.service"
CONFIG = """\
tls: {cert: relay.pem, key: relay.key}
ca: {cert: ca.pem, key: ca.key}
listen: 127.0.0.1:0
agents_listen: 127.0.0.1:0
admin: null
"""


def relay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridgehead.relay.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_dry_run_shows_the_relays_plan(tmp_path: Path) -> None:
    """Its own user and folders, both private keys chowned to it, the relay's unit with this
    installation's executable; a config in /tmp is named as one the service cannot see."""
    (tmp_path / "relay.yaml").write_text(CONFIG)
    result = relay("service", "install", "-c", str(tmp_path / "relay.yaml"), "--dry-run")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"problem: {tmp_path / 'relay.yaml'} is in /tmp")
    for expected in (
        "--user-group bridgehead-relay", "make folder /etc/bridgehead-relay (mode 0750)",
        f"run chown bridgehead-relay:bridgehead-relay {tmp_path / 'relay.key'}",
        f"run chown bridgehead-relay:bridgehead-relay {tmp_path / 'ca.key'}",
        "write /etc/systemd/system/bridgehead-relay.service",
        f"run -c {tmp_path / 'relay.yaml'}", "| StateDirectory=bridgehead-relay",
        "run systemctl enable bridgehead-relay.service",
        "run systemctl restart bridgehead-relay.service",
    ):  # fmt: skip
        assert expected in out, expected


def test_the_plan_under_a_scratch_root(tmp_path: Path) -> None:
    """Install writes the relay's unit (verified by systemd when it is here); uninstall
    --purge removes it, the folders and the user."""
    root, ran = tmp_path / "root", []
    executable = Path("/opt/bridgehead/bin/bridgehead-relay")
    config = Path("/etc/bridgehead-relay/relay.yaml")
    keys = [Path("/etc/bridgehead-relay/relay.key")]

    def record(argv: Sequence[str]) -> None:
        ran.append(tuple(argv))

    carry_out(RELAY.install_plan(config, keys, executable), root, run=record,
              check=lambda argv: False)  # fmt: skip

    unit = root / "etc/systemd/system/bridgehead-relay.service"
    assert f"ExecStart={executable} run -c {config}" in unit.read_text()
    assert ran[0][:2] == ("useradd", "--system")
    assert ran[-2:] == [
        ("systemctl", "enable", "bridgehead-relay.service"),
        ("systemctl", "restart", "bridgehead-relay.service"),
    ]
    ran.clear()
    carry_out(RELAY.uninstall_plan(purge=True), root, run=record, check=lambda argv: False)
    assert not unit.exists()
    assert ("userdel", "bridgehead-relay") in ran


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_the_relay_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    """The shipped relay unit passes `systemd-analyze verify` and scores 2.0 or better."""
    here = shutil.which("bridgehead-relay") or str(Path(sys.executable).parent / "bridgehead-relay")
    unit = tmp_path / "bridgehead-relay.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/bridgehead-relay", here))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0
