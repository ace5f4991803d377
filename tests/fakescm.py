"""Stand-ins for what only Windows has, for tests/test_windows_service.py: the service control
manager (`FakeServiceManager`, a `windows.ServiceManager` that records calls and keeps
states), `ReportServiceStatus` (`Reports`) and the event log (`RecordingHandler`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from bridgehead.agent.service import windows


class FakeServiceManager:
    """Records every call and keeps each service's state as the SCM would."""

    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.states = dict(states or {})
        self.calls: list[tuple[object, ...]] = []
        self.specs: dict[str, windows.ServiceSpec] = {}
        self.passwords: list[str | None] = []
        self.commands: list[tuple[str, ...]] = []

    def create(self, spec: windows.ServiceSpec, password: str | None) -> None:
        self.calls.append(("create", spec.name))
        self.specs[spec.name], self.states[spec.name] = spec, "STOPPED"
        self.passwords.append(password)

    def configure_recovery(self, name: str, delays: Sequence[int], reset_after: int) -> None:
        self.calls.append(("configure_recovery", name, tuple(delays), reset_after))

    def start(self, name: str) -> None:
        self.calls.append(("start", name))
        self.states[name] = "RUNNING"

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.states[name] = "STOPPED"

    def delete(self, name: str) -> None:
        self.calls.append(("delete", name))
        del self.states[name]

    def query(self, name: str) -> str | None:
        return self.states.get(name)

    def run_command(self, argv: Sequence[str]) -> None:
        self.commands.append(tuple(argv))
        self.calls.append(("run", *argv[:2]))


class Reports:
    """The states the host reports, as the SCM would receive them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []

    def __call__(self, state: str, wait_hint_ms: int = 0, exit_code: int = 0) -> None:
        self.seen.append((state, wait_hint_ms, exit_code))

    def wait_for(self, state: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not any(seen[0] == state for seen in self.seen):
            assert time.monotonic() < deadline, self.seen
            time.sleep(0.02)


class RecordingHandler(logging.Handler):
    """Stands in for the Windows event log (NTEventLogHandler)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
