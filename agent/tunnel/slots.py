"""What the tunnel client reports of each of its `connections`: state, since when (the
client's monotonic clock), reconnects and the last error. Read by the admin page; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridgehead.agent.tunnel.connection import TunnelConnection

SlotState = Literal["connecting", "up", "down"]


@dataclass
class ConnectionSlot:
    """One kept connection: `connection` is the live one while `state` is up."""

    state: SlotState = "connecting"
    since: float | None = None
    reconnects: int = 0
    """Connections made again after this slot's first one was lost."""
    last_error: str | None = None
    connection: TunnelConnection | None = None
    _was_up: bool = False

    def connected(self, connection: TunnelConnection, now: float) -> None:
        self.reconnects += self._was_up
        self.state, self.since, self.connection, self._was_up = "up", now, connection, True

    def closed(self, now: float) -> None:
        self.state, self.since, self.connection = "down", now, None

    def failed(self, error: str, now: float) -> None:
        self.last_error = error
        if self.state != "down":
            self.state, self.since = "down", now
        self.connection = None
