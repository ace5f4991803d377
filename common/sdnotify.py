"""The systemd notification protocol (`sd_notify`), so a `Type=notify` unit knows when
Bridgehead is ready, what it is doing, that its event loop is alive, and when it drains.

Messages are datagrams of `NAME=value` lines sent to the socket named by `NOTIFY_SOCKET`
(a leading `@` is Linux's abstract namespace). Without `NOTIFY_SOCKET` (not run by systemd)
every call does nothing. `WATCHDOG_USEC` asks for `WATCHDOG=1` at least that often; the pings
are sent by a task on the event loop, at half the interval, so a loop that hangs stops them
and systemd restarts the process. A failed send is ignored: notifications must never stop
the service they describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog = watchdog_interval(env)
        """Seconds systemd waits for a ping, or None when it asked for none."""

    def send(self, **fields: str) -> None:
        """One message, e.g. `send(READY="1", STATUS="serving")`."""
        if self.address is None:
            return
        message = "\n".join(f"{name}={value}" for name, value in fields.items()).encode()
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
        ):
            sock.sendto(message, self.address)

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status)

    def stopping(self, status: str) -> None:
        self.send(STOPPING="1", STATUS=status)

    async def keep_alive(self) -> None:
        """Forever, while the loop runs: WATCHDOG=1 at half systemd's interval."""
        if self.watchdog is None:
            return
        while True:
            self.send(WATCHDOG="1")
            await asyncio.sleep(self.watchdog / 2)


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """`WATCHDOG_USEC` in seconds, if it is meant for this process (`WATCHDOG_PID`)."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


def _address(name: str) -> str | bytes | None:
    if not name:
        return None
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name if name.startswith("/") else None
