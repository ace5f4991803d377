"""The relay's HTTP ports against slow and numerous clients: common.guard (a head timeout, an
idle keep-alive timeout and a cap on open connections) held to the relay's caller limits.

Rules: past the cap a new connection is closed at once, without an answer; malformed
requests are logged without their bytes (`relay.redact`).
"""

from __future__ import annotations

import logging

from bridgehead.common.guard import Guard, GuardedSite, GuardLimits
from bridgehead.relay.config import CallerLimits

__all__ = ["GuardedSite", "port_guard"]
log = logging.getLogger("bridgehead.relay")


def port_guard(limits: CallerLimits, port: str) -> Guard:
    """The guard of one relay port (`port` names it in the log)."""
    held = GuardLimits(limits.header_timeout, limits.max_connections, limits.keep_alive_timeout)
    return Guard(held, port, log)
