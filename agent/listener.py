"""The local listener's connection guard: common.guard (the defences against slow and
numerous clients aiohttp lacks) held to the agent's `limits:`.

- header timeout: a request's line and headers must be complete within
  `limits.header_timeout` of its first byte (a connection's first request: of the
  connection; a TLS handshake is bounded by the same time); past it the connection is closed
  without an answer;
- keep-alive: a connection idle after an answer is closed after `limits.keepalive_timeout`;
- a cap on open connections: past `limits.max_connections` a new connection gets one raw 503
  problem (`overloaded`) and is closed.
The body idle timeout is the handler's (agent.http reads a body piece by piece).
"""

from __future__ import annotations

import logging

from bridgehead.agent.api import problems
from bridgehead.agent.config.model import LimitsConfig
from bridgehead.common.guard import Guard, GuardedSite, GuardLimits
from bridgehead.common.problem import PROBLEM_JSON
from bridgehead.common.requestid import new_request_id

__all__ = ["GuardedSite", "listener_guard", "overloaded"]
log = logging.getLogger("bridgehead.listener")


def listener_guard(limits: LimitsConfig, port: str) -> Guard:
    """The guard of the local listener (`port` names it in the log)."""
    held = GuardLimits(limits.header_timeout, limits.max_connections, limits.keepalive_timeout)
    return Guard(held, port, log, refusal=lambda: overloaded(limits.max_connections))


def overloaded(limit: int) -> bytes:
    """The raw 503 a connection past the cap gets before it is closed."""
    detail = (
        f"the agent already holds {limit} connections (limits.max_connections); "
        "retry shortly or reuse a connection"
    )
    response = problems.problem(503, "Too many connections", detail, new_request_id(), "busy")
    body = response.body if isinstance(response.body, bytes) else b""
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {PROBLEM_JSON}\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body
