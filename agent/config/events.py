"""The top-level `events:` section of agent.yaml: how often outboxes are read and how long the
agent's event log keeps events. (A resource's own `events:` says how it is captured.)"""

from __future__ import annotations

from pydantic import Field

from bridgehead.common.config.base import Duration, Frozen


class Retention(Frozen):
    age: Duration = 7 * 86400.0
    max_bytes: int = Field(2 << 30, ge=1 << 20)
    """The event log's data, at most: the oldest events go first."""


class EventSettings(Frozen):
    interval: Duration = 0.5
    """How often each source's outbox is read (at once again while it is full)."""
    retention: Retention = Retention()
    relay: bool | tuple[str, ...] = True
    """Which captured resources' events the relay may read for its webhooks (over its own
    control stream, with no caller's key): true, all of them; false, none; or a list."""
    backlog_warning: int = Field(100_000, ge=1)
    """A consumer more events than this behind makes /readyz and the admin page warn (the
    agent stays ready)."""
