"""`bridgehead service` on Windows, run here against a fake service control manager: install
registers `Bridgehead` with delayed auto-start, restart-on-failure recovery and the chosen
account (the password from stdin, never printed); uninstall drains and removes it and keeps
config and state unless --purge; status names the state; --dry-run prints every step. The
service's own logic (`ServiceHost`) runs a real agent: a service stop drains like SIGTERM
(a stream in flight finishes) and STOPPED is reported; a start that fails reports a non-zero
exit code so the recovery actions apply."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import http.client
import io
import logging
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fakescm import FakeServiceManager, RecordingHandler, Reports
from polling import refused_within

from bridgehead.agent.service.host import MARGIN_MS, ServiceHost
from bridgehead.agent.service_cli import service_command
from bridgehead.common import logs
from bridgehead.common.commands import UsageError
from bridgehead.common.runtime import StopEvent

BRIDGEHEAD = [sys.executable, "-m", "bridgehead.agent.cli"]
KEY = "windows-service-key-0123456789"
ROWS = 20_000


@pytest.fixture
def program_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch %ProgramData% holding a SQLite config in Bridgehead\\agent.yaml."""
    root = tmp_path / "ProgramData"
    folder = root / "Bridgehead"
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.close()
    (folder / "agent.yaml").write_text(
        yaml.safe_dump({"sources": {"db": {"sqlite": "t.db"}}, "admin": None})
    )
    monkeypatch.setenv("ProgramData", str(root))
    return root


def windows_command(
    action: str,
    manager: FakeServiceManager,
    *flags: str,
    account: str | None = None,
    stdin: io.StringIO | None = None,
) -> str:
    """What `bridgehead service ACTION --platform windows` prints, against `manager`."""
    out = io.StringIO()
    code = service_command(
        action, None, "--dry-run" in flags, "--purge" in flags, out, platform="windows",
        account=account, stdin=stdin or io.StringIO(""), manager=manager,
    )  # fmt: skip
    assert code == 0
    return out.getvalue()


def test_install_registers_a_delayed_service_that_restarts_on_failure(program_data: Path) -> None:
    """The folders are made, the service is created (delayed auto-start,
    NT SERVICE\\Bridgehead, the config under %ProgramData%), the folders are locked down
    with icacls (the virtual account exists once the service does), the service is given
    restart-after-5/30/60 s recovery reset after a day, and started; no password is asked
    for the virtual account."""
    folder, manager = program_data / "Bridgehead", FakeServiceManager()

    assert windows_command("install", manager) == "service install: done\n"

    assert manager.calls == [
        ("create", "Bridgehead"),
        ("run", "icacls", str(folder)),
        ("run", "icacls", str(folder / "state")),
        ("run", "icacls", str(folder / "logs")),
        ("configure_recovery", "Bridgehead", (5, 30, 60), 86400),
        ("start", "Bridgehead"),
    ]
    spec = manager.specs["Bridgehead"]
    assert spec.delayed_start
    assert spec.account == r"NT SERVICE\Bridgehead"
    assert spec.config_file == folder / "agent.yaml"
    assert manager.passwords == [None]
    assert (folder / "state").is_dir()
    assert (folder / "logs").is_dir()
    ran = manager.commands
    assert ran[0][:3] == ("icacls", str(folder), "/inheritance:r")
    assert r"NT SERVICE\Bridgehead:(OI)(CI)RX" in ran[0]
    assert ran[1] == ("icacls", str(folder / "state"), "/grant", r"NT SERVICE\Bridgehead:(OI)(CI)M")
    assert manager.query("Bridgehead") == "RUNNING"


@pytest.mark.usefixtures("program_data")
def test_an_account_takes_its_password_from_stdin() -> None:
    """--account runs the service as that account with the password read from stdin; an
    account that needs one and gets none is refused before anything changes."""
    manager = FakeServiceManager()
    stdin = io.StringIO("s3cret-pass\n")

    windows_command("install", manager, account=r"CORP\svc-bridgehead", stdin=stdin)

    assert manager.specs["Bridgehead"].account == r"CORP\svc-bridgehead"
    assert manager.passwords == ["s3cret-pass"]
    empty = FakeServiceManager()
    with pytest.raises(UsageError, match="needs its password on stdin"):
        windows_command("install", empty, account=r"CORP\svc-bridgehead")
    assert empty.calls == []


def test_uninstall_drains_and_removes_and_keeps_the_config_unless_purged(
    program_data: Path,
) -> None:
    """Uninstall stops a running service (the stop waits for the drain) and deletes it; the
    config and state stay; --purge removes the folder too; a service already gone is fine."""
    folder = program_data / "Bridgehead"
    manager = FakeServiceManager({"Bridgehead": "RUNNING"})

    windows_command("uninstall", manager)

    assert manager.calls == [("stop", "Bridgehead"), ("delete", "Bridgehead")]
    assert (folder / "agent.yaml").exists()
    gone = FakeServiceManager()
    windows_command("uninstall", gone, "--purge")
    assert gone.calls == []
    assert not folder.exists()


def test_status_names_the_service_state(program_data: Path) -> None:
    """Status prints the SCM's state of the service, or that it is not installed."""
    out = windows_command("status", FakeServiceManager({"Bridgehead": "STOP_PENDING"}))
    assert out.startswith("service Bridgehead: STOP_PENDING\n")
    assert "readiness: unknown (admin: is off in the config)" in out
    assert windows_command("status", FakeServiceManager()).startswith(
        "service Bridgehead: not installed"
    )


def test_dry_run_prints_every_windows_step_and_changes_nothing(program_data: Path) -> None:
    """`--platform windows --dry-run` lists the folders, the ACLs, the service with its
    start type and account, recovery and start; uninstall --purge lists the removal."""
    config = program_data / "Bridgehead" / "agent.yaml"
    run = [*BRIDGEHEAD, "service", "install", "--platform", "windows", "--dry-run"]
    result = subprocess.run([*run, "-c", str(config)], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for expected in (
        f"make folder {program_data / 'Bridgehead' / 'state'}",
        f"run icacls {program_data / 'Bridgehead'} /inheritance:r",
        r"create service Bridgehead ('Bridgehead gateway agent'), delayed auto-start, "
        rf"account NT SERVICE\Bridgehead, config {config}",
        "configure recovery of Bridgehead: restart on failure after 5 s, 30 s, 60 s; "
        "reset the failure count after 86400 s",
        "start service Bridgehead",
    ):
        assert expected in result.stdout, expected
    purge = subprocess.run(
        [*BRIDGEHEAD, "service", "uninstall", "--platform", "windows", "--dry-run", "--purge"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert purge.stdout.splitlines() == [
        "stop service Bridgehead", "delete service Bridgehead",
        f"remove {program_data / 'Bridgehead'}",
    ]  # fmt: skip
    assert not (program_data / "Bridgehead" / "state").exists()


def test_a_config_outside_the_data_folder_is_refused(program_data: Path, tmp_path: Path) -> None:
    """A config outside %ProgramData%\\Bridgehead (whose ACL install sets) is refused before
    anything changes; the dry run names the problem first."""
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text((program_data / "Bridgehead" / "agent.yaml").read_text())
    manager = FakeServiceManager()
    with pytest.raises(UsageError, match=r"is outside .*move the config and its certificates"):
        service_command("install", elsewhere, False, False, io.StringIO(), platform="windows",
                        manager=manager)  # fmt: skip
    assert manager.calls == []
    assert manager.commands == []
    out = io.StringIO()
    service_command("install", elsewhere, True, False, out, platform="windows", manager=manager)
    assert out.getvalue().startswith(f"problem: {elsewhere} is outside")


def test_other_platforms_are_refused_in_one_sentence() -> None:
    """On a platform with neither systemd nor the SCM the command says what to do instead;
    --account is refused on Linux, where the service user is fixed."""
    with pytest.raises(UsageError, match=r"supports Linux \(systemd\) and Windows; this is darwin"):
        service_command("install", None, False, False, io.StringIO(), platform="darwin")
    with pytest.raises(UsageError, match="managed on Windows; --dry-run shows its plan"):
        service_command("install", None, False, False, io.StringIO(), platform="windows")
    with pytest.raises(UsageError, match="--account is for Windows"):
        service_command("install", None, True, False, io.StringIO(), platform="linux",
                        account="someone")  # fmt: skip


def test_the_stop_event_wakes_a_loop_from_another_thread() -> None:
    """The runtime's StopEvent set from a service-control thread wakes the loop waiting on
    it; one set before the wait is not missed."""
    stop = StopEvent()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(stop.wait(), timeout=10))
    assert time.monotonic() - started < 5
    asyncio.run(asyncio.wait_for(stop.wait(), timeout=1))  # already set: returns at once


class Recorded:
    """A service that records its start and stop."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def start(self) -> None:
        self.seen.append("start")

    async def stop(self) -> None:
        self.seen.append("stop")


@pytest.mark.usefixtures("restored_logging")
def test_a_stop_while_starting_never_reports_running(served_config: tuple[Path, int]) -> None:
    """SvcStop before the agent is up: the services start and are drained at once, and the
    SCM hears START_PENDING, STOP_PENDING, STOPPED, never RUNNING after the stop."""
    config, _ = served_config
    reports, seen = Reports(), []
    host = ServiceHost(config, reports, make_services=lambda _c, _f: [Recorded(seen)])
    host.request_stop()

    assert host.run() == 0

    assert seen == ["start", "stop"]
    assert [state for state, _, _ in reports.seen] == [
        "STOP_PENDING", "START_PENDING", "STOP_PENDING", "STOPPED",
    ]  # fmt: skip


def test_the_service_class_needs_windows() -> None:
    """The pywin32 service class is importable only where pywin32 is (Windows)."""
    with pytest.raises(ImportError):
        import bridgehead.agent.service.winservice  # noqa: F401, PLC0415


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logs.close()
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def served_config(tmp_path: Path) -> tuple[Path, int]:
    path, port = tmp_path / "t.db", free_port()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)",
                       ((i, f"row {i} " + "x" * 40) for i in range(1, ROWS + 1)))  # fmt: skip
    db.close()
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "sources": {"db": {"sqlite": str(path)}},
        "resources": {"t": {"source": "db", "table": "t", "key": ["id"], "max_rows": ROWS}},
        "auth": {"api_keys": [{"name": "k", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                               "scopes": ["t:read"]}]},
        "listen": f"127.0.0.1:{port}", "admin": None, "shutdown_grace": "20s",
    }))  # fmt: skip
    return config, port


@pytest.mark.usefixtures("restored_logging")
# A probe connection can land in the moment the listener closes; the loop then ends with it
# unclosed. It is collected (and its warning dropped) here, not in whichever test runs next.
@pytest.mark.filterwarnings("ignore:unclosed transport:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_service_stop_drains_like_sigterm(served_config: tuple[Path, int]) -> None:
    """The host starts a real agent and reports RUNNING; SvcStop reports STOP_PENDING with a
    wait hint covering shutdown_grace and sets the runtime's stop event: new connections are
    refused, the stream in flight is delivered whole, then STOPPED (exit 0) is reported; the
    log goes to logs\\agent.log beside the config and the lifecycle to the event log."""
    config, port = served_config
    reports, events = Reports(), RecordingHandler()
    host = ServiceHost(config, reports, event_log=events)
    runner = threading.Thread(target=host.run)
    runner.start()
    reports.wait_for("RUNNING")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/t",
        headers={"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson"},
    )
    response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=30)  # noqa: S310
    rows, stopped = 0, False
    while chunk := response.read(1 << 14):
        rows += chunk.count(b"\n")
        if not stopped and rows > 1000:
            host.request_stop()  # what SvcStop does
            stopped = True
            assert refused_within(port, 10)
        time.sleep(0.002)
    runner.join(timeout=30)
    assert rows == ROWS, (reports.seen, events.lines)
    assert not runner.is_alive()
    hint = 20_000 + MARGIN_MS
    assert [s for s in reports.seen if s[0] != "START_PENDING"] == [
        ("RUNNING", 0, 0), ("STOP_PENDING", hint, 0), ("STOP_PENDING", hint, 0), ("STOPPED", 0, 0),
    ]  # fmt: skip
    assert (config.parent / "logs" / "agent.log").exists()
    assert "Bridgehead service draining: finishing requests in flight" in events.lines
    gc.collect()


@pytest.mark.usefixtures("restored_logging")
def test_a_start_that_fails_reports_a_failure_exit_code(tmp_path: Path) -> None:
    """A config that does not load ends the service with STOPPED and exit code 1 (so the
    SCM's recovery restarts it), and the reason reaches the event log."""
    config = tmp_path / "agent.yaml"
    config.write_text("sources: {db: {sqlite: t.db}}\nlisten: nowhere\n")
    reports, events = Reports(), RecordingHandler()

    assert ServiceHost(config, reports, event_log=events).run() == 1

    assert reports.seen[-1] == ("STOPPED", 0, 1)
    assert any("Bridgehead service stopped:" in line for line in events.lines)
