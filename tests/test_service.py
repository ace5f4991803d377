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
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.service import linux
from bridgehead.common.commands import Failure
from bridgehead.common.config.document import state_path_of
from bridgehead.common.service_steps import carry_out
from bridgehead.relay.config import RelayConfig

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
        f"run -c {config_file}", "| Type=notify", "run systemctl enable bridgehead.service",
        "run systemctl restart bridgehead.service",
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
    assert [a[0] for a in ran] == ["chown", "chown", "chmod", *["systemctl"] * 3]
    assert ran[-2:] == [
        ("systemctl", "enable", "bridgehead.service"),
        ("systemctl", "restart", "bridgehead.service"),
    ]
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
        assert verify.returncode == 0, verify.stderr

    ran.clear()
    carry_out(linux.uninstall_plan(purge=True), root, run=ran.append, check=lambda argv: False)
    assert not unit.exists()
    assert not (root / "etc/bridgehead").exists()
    assert ("userdel", "bridgehead") in ran


def with_tunnel(config_file: Path, certs: str) -> Path:
    folder = config_file.parent / certs
    folder.mkdir(exist_ok=True)
    for name in ("ca.pem", "agent.pem", "agent.key"):
        (folder / name).write_text("")
    (folder / "agent.key").chmod(0o600)
    data = yaml.safe_load(config_file.read_text())
    data["tunnel"] = {"relay": "127.0.0.1:8443", "ca": f"{certs}/ca.pem",
                      "cert": f"{certs}/agent.pem", "key": f"{certs}/agent.key"}  # fmt: skip
    config_file.write_text(yaml.safe_dump(data))
    return folder


def test_the_tunnel_certificates_folder_is_the_services_to_write(
    config_file: Path, tmp_path: Path
) -> None:
    """The agent renews its tunnel certificate and key in place, so their folder is handed
    to the service user and is the one folder besides the state the unit may write."""
    certs = with_tunnel(config_file, "certs").resolve()
    ran: list[Sequence[str]] = []
    plan = linux.install_plan(config_file, load_config(config_file), Path("/usr/bin/bridgehead"))
    carry_out(plan, tmp_path / "root", run=ran.append, check=lambda argv: True)
    assert ("chown", "bridgehead:bridgehead", str(certs)) in ran
    unit = (tmp_path / "root/etc/systemd/system/bridgehead.service").read_text()
    assert unit.count("ReadWritePaths=") == 2
    assert f"ReadWritePaths=/var/lib/bridgehead\nReadWritePaths={certs}\n" in unit


def test_tunnel_keys_beside_the_config_are_refused(config_file: Path) -> None:
    """Keys in the config's own folder would make that folder writable to the service, and
    so its config: refused, naming the folder to move them to."""
    with_tunnel(config_file, ".")
    with pytest.raises(Failure, match="beside the config") as refused:
        linux.install_plan(config_file, load_config(config_file), Path("/usr/bin/bridgehead"))
    assert f"{config_file.parent.resolve() / 'certs'}" in str(refused.value)


def test_under_systemd_state_goes_to_the_state_directory(config_file: Path, tmp_path: Path) -> None:
    """A config without state_dir keeps its state in $STATE_DIRECTORY when systemd gives
    one (the config's own folder is read-only under ProtectSystem=strict)."""
    given = tmp_path / "var-lib-bridgehead"
    config = load_config(config_file, environ={"STATE_DIRECTORY": str(given)})
    assert config.state_path == given
    assert load_config(config_file, environ={}).state_path == config_file.parent / "state"


@pytest.mark.parametrize(
    ("file", "text", "state"),
    [
        ("/etc/bridgehead/agent.yaml", "", "/var/lib/bridgehead"),
        ("/etc/bridgehead-relay/relay.yaml", "", "/var/lib/bridgehead-relay"),
        ("/etc/bridgehead/agent.yaml", "state_dir: /srv/state\n", "/srv/state"),
        ("/etc/plant/agent.yaml", "", "/etc/plant/state"),
    ],
    ids=["agent", "relay", "state_dir-wins", "not-a-service-folder"],
)
def test_a_service_config_keeps_its_state_in_var_lib(file: str, text: str, state: str) -> None:
    """A config in /etc/bridgehead keeps its state in /var/lib/bridgehead for whoever reads
    it, the unit or an operator's `sudo bridgehead secret encrypt`, so both use one folder
    (and one secret key); the relay's likewise; elsewhere the folder beside the config."""
    model = RelayConfig if "relay" in file else AgentConfig
    assert state_path_of(text, Path(file), model) == Path(state)
