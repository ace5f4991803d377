"""The tunnel's control paths: requests the relay itself sends to the agent, never a caller's.

Rules:
- Every path under `PREFIX` (`/.bridgehead/`) is reserved for relay-to-agent control. The
  relay refuses any caller request whose forwarded path `reserved` names (404), so only the
  relay can open such a stream; the agent answers them in its tunnel connection, never
  through the API pipeline.
- `reserved` errs wide: the path is percent-decoded and lower-cased first, so no spelling of
  the prefix slips past the relay; the agent matches the exact, undecoded paths below.
"""

from __future__ import annotations

from urllib.parse import unquote

PREFIX = "/.bridgehead/"
RENEWAL = PREFIX + "renewal"
"""GET, a long poll: answered with the agent's CSR once its renewal is due."""
CERTIFICATE = PREFIX + "certificate"
"""POST: the relay's answer to that CSR, a certificate or the sentence saying why not."""
EVENTS = PREFIX + "events"
"""The agent's change events (`/v1/events...` below it), read and acknowledged by the relay's
webhook deliverer as the relay itself, with no caller's credentials."""
MAX_MESSAGE = 64 * 1024
"""The largest control message body either end reads."""


def is_control(path: str) -> bool:
    """Whether the agent handles this (undecoded) request path itself."""
    return path.startswith(PREFIX)


def reserved(path: str) -> bool:
    """Whether a caller's forwarded path reaches into the control paths, however spelled."""
    return unquote(path).lower().lstrip("/").startswith(PREFIX.lstrip("/").rstrip("/"))
