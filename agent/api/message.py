"""The request and response the pipeline speaks, independent of any transport.

Fronts build requests with `agent.api.intake` (one set of rules for both) and send responses
with `agent.api.pipeline.deliver`, which alone closes a streamed body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    """The percent-encoded path, without the query string."""
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes = b""
    request_id: str = ""
    """The id it goes by (`X-Request-Id`, by common.requestid); the pipeline makes one if empty."""
    via: str = "local"
    """Which front received it: `local` or `relay`, for the audit log."""
    remote: str = ""
    """The peer's address on the local listener (failed logins are throttled by it); empty
    through the tunnel, whose callers the relay authenticates and throttles."""
    stream: AsyncIterator[bytes] | None = None
    """A bulk load's body (NDJSON or CSV), read as it arrives instead of into `body`."""
    as_relay: bool = False
    """The relay's own request (a control stream, `/.bridgehead/events`): served to the
    principal `relay`, which may read the captured resources' events and nothing else."""


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterator[bytes] = b""
    rows: int = 0
    """Rows read or written, for the audit log; not sent."""
