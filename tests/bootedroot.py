"""A throwaway machine with a real systemd: the host's / under a copy-on-write overlay,
booted by systemd-nspawn (systemd as its PID 1, to basic.target only, so none of the host's
own services start), with a private network of its own (loopback only: its ports cannot
meet the host's) and a folder carried in at /run/carry. Commands run inside it through
nsenter, as root, in a clean environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from debkit import run

BOOT_SECONDS = 90
STOP_SECONDS = 60
ENVIRONMENT = ("env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root")


def why_not_here() -> str | None:
    """Why no container can be booted on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root: the container is booted from an overlay of /"
    missing = [tool for tool in ("systemd-nspawn", "nsenter", "unshare") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not installed (.ci/setup --test installs systemd-container)"
    if not Path("/lib/systemd/systemd").exists():
        return "systemd is not installed here"
    return None


class BootedRoot:
    def __init__(self, base: Path, carry: Path) -> None:
        self.base, self.carry = base, carry
        self.leader: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log = base / "boot.log"

    def boot(self) -> str | None:
        """Start the container and wait until its systemd is up; None, or why it is not."""
        upper, work, merged = (self.base / name for name in ("upper", "work", "merged"))
        for folder in (upper, work, merged):
            folder.mkdir()
        script = (
            'set -e; mount -t overlay booted -o "lowerdir=/,upperdir=$U,workdir=$W" "$M";'
            " exec systemd-nspawn --quiet --keep-unit --register=no --private-network"
            ' --bind-ro="$C:/run/carry" -D "$M" --boot -- --unit=basic.target'
        )
        env = {"U": str(upper), "W": str(work), "M": str(merged), "C": str(self.carry),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}  # fmt: skip
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + BOOT_SECONDS
        while self.leader is None:
            if self._process.poll() is not None or time.monotonic() > deadline:
                return f"systemd-nspawn did not boot the container: {self.log_tail()}"
            self.leader = _child_systemd(self._process.pid)
            time.sleep(0.2)
        left = max(1, int(deadline - time.monotonic()))
        state = self("timeout", str(left), "systemctl", "is-system-running", "--wait").stdout
        if state.strip() not in ("running", "degraded"):
            return f"the container's systemd is {state.strip() or 'not answering'}"
        return None

    def __call__(self, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        assert self.leader is not None, "boot() first"
        return run(["nsenter", "--target", str(self.leader), "--all", "--", *ENVIRONMENT, *cmd],
                   timeout=timeout)  # fmt: skip

    def must(self, *cmd: str, timeout: float = 300) -> str:
        """Run `cmd` inside; its output, or a failed assertion with all it printed."""
        done = self(*cmd, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout}{done.stderr}"
        return done.stdout

    def journal(self, unit: str) -> str:
        return self("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """Power the container off (nspawn turns SIGTERM into an orderly shutdown)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _child_systemd(parent: int) -> int | None:
    """The container's PID 1 as the host sees it: the child of nspawn that runs systemd."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and command.endswith(b"/systemd"):
            return int(entry.name)
    return None
