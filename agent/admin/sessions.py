"""The admin page's browser sessions and their CSRF tokens.

Why a login form and a cookie: a browser cannot add `Authorization: Bearer` to a page it
navigates to, so with an admin token the page asks for it once in a form; the token (its
SHA-256 compared in constant time, as for every admin request) buys a session: a random
256-bit id in an `HttpOnly; SameSite=Strict` cookie (page scripts cannot read it, requests
started by other sites do not carry it), kept in this process's memory only (a restart
signs everyone out), bounded in number and lifetime. Without an admin token any `GET /`
gets a session, which then only carries the CSRF token.

CSRF: each session has its own random token, handed to the page in a `<meta>` element;
every action (a POST) must send it back in `X-CSRF-Token`, compared in constant time. A
page of another site can neither read it (same-origin policy; the admin listener sends no
CORS headers) nor send that header without a preflight it never gets; the SameSite=Strict
cookie is a second lock. The cookie name carries the port, so two agents on one host keep
their own (cookies are shared across the ports of a host).

Rules: the clock is passed in; no I/O here.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

LIFETIME = 12 * 3600.0
"""Seconds a session lasts after it was opened."""
MAX_SESSIONS = 1000
"""Sessions kept at once; opening one more forgets the oldest."""
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires: float


def cookie_name(port: int | None) -> str:
    return f"bridgehead_admin_{port}" if port else "bridgehead_admin"


def csrf_matches(session: Session | None, given: str | None) -> bool:
    """Whether `given` is the session's CSRF token (constant time); never without both."""
    if session is None or not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode())


class Sessions:
    def __init__(
        self,
        lifetime: float = LIFETIME,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime, self.limit, self.clock = lifetime, limit, clock
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self) -> Session:
        """A new session; the oldest is forgotten beyond `limit`."""
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock() + self.lifetime
        )
        self._open[session.id] = session
        while len(self._open) > self.limit:
            self._open.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id, or None (unknown, or expired and now forgotten).
        The id is 256 random bits looked up by hash: its timing tells a guesser nothing."""
        if not session_id:
            return None
        session = self._open.get(session_id)
        if session is not None and session.expires <= self.clock():
            del self._open[session_id]
            return None
        return session

    def close(self, session_id: str) -> None:
        self._open.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._open)
