# Every process the suite starts goes through `Procs`: each in its own session, its output in
# a log file, and all stopped (SIGTERM, then SIGKILL of the group) on the way out, whether the
# run ends, fails or is interrupted.
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


class Procs:
    """The processes of one run, stopped together by `stop_all` (also from a signal)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: list[subprocess.Popen[bytes]] = []
        self.stop_signal: dict[int, int] = {}

    def start(
        self, name: str, argv: list[str], stop_signal: int = signal.SIGTERM, **options: Any
    ) -> subprocess.Popen[bytes]:
        """`argv` in a session of its own; `stop_signal` asks its group to stop (SIGINT for a
        Python driver that cleans up on KeyboardInterrupt)."""
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options
        )
        log.close()
        self.running.append(process)
        self.stop_signal[process.pid] = stop_signal
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 10) -> None:
        if process.poll() is None:
            _kill_group(process.pid, self.stop_signal.get(process.pid, signal.SIGTERM))
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid, signal.SIGKILL)
                process.wait(5)
        _kill_group(process.pid, signal.SIGKILL)  # what it left in its group
        with contextlib.suppress(ValueError):
            self.running.remove(process)

    def stop_many(self, processes: list[subprocess.Popen[bytes]]) -> None:
        """SIGTERM to all at once, then each waited for (and killed past its grace)."""
        for process in processes:
            if process.poll() is None:
                _kill_group(process.pid, self.stop_signal.get(process.pid, signal.SIGTERM))
        for process in processes:
            self.stop(process)

    def stop_all(self) -> None:
        self.stop_many(list(reversed(self.running)))

    def wait_ready(
        self, process: subprocess.Popen[bytes], check: Callable[[], bool], name: str
    ) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{tail(self.folder / f'{name}.log')}")
            with contextlib.suppress(OSError):
                if check():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready in 60 s:\n{tail(self.folder / f'{name}.log')}")


def raise_on_signals() -> None:
    """SIGTERM and SIGHUP end the run like Ctrl-C, so the `finally` that stops all runs."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
