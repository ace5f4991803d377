"""The health page on the admin listener: `GET /` (the page, or its login form when the
listener has a token and the browser no session), `POST /login`, `POST /logout`, the
page's own scripts and style sheet, and its two actions, `POST /actions/sources/NAME/test`
(probe that source now) and `POST /actions/tunnel/reconnect` (drop and redial the tunnel
connections one at a time, or the one numbered in `{"connection": N}`).

Rules: the page's files ship in the package (`static/`) and are read once at start; the
page refreshes itself from `/status.json` and holds no data of its own. Sessions and CSRF
are `agent.admin.sessions` (why a login form and a cookie is said there); an action without
its session's CSRF token, or started by another site (`Sec-Fetch-Site: cross-site`), is a
403 problem. Without a token, sessions are opened only for a loopback Host, so a rebound DNS
name cannot get a CSRF token. The page's CSP lets it load only its own script, style and data URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from bridgehead.agent.admin.monitor import Monitor
from bridgehead.agent.admin.sessions import (
    CSRF_HEADER,
    Session,
    Sessions,
    cookie_name,
    csrf_matches,
)
from bridgehead.common.auth import find_by_digest
from bridgehead.common.config.base import is_loopback
from bridgehead.common.problem import JSON, PROBLEM_JSON, problem_body, slug_of
from bridgehead.common.requestid import new_request_id

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ASSETS = {
    "page.js": "text/javascript", "dom.js": "text/javascript", "events.js": "text/javascript",
    "page.css": "text/css",
}  # fmt: skip
"""The page's script modules and style sheet, by file name, with their media types."""
PUBLIC_PATHS = frozenset({"/", "/login", *(f"/{name}" for name in ASSETS)})
"""Answered without the token: the page decides between itself and its login form; the
scripts and style sheet are the package's own files and carry no data."""
RECONNECT_TIMEOUT = 20.0
"""Seconds the reconnect action waits for the connections to be replaced before it answers
that they are still being replaced."""


@dataclass(frozen=True)
class PageFiles:
    index: str
    login: str
    assets: dict[str, bytes]
    """The files of `ASSETS`, by name."""

    @classmethod
    def load(cls) -> PageFiles:
        """Read the page's files from the package (blocking: run on a thread)."""
        folder = resources.files("bridgehead.agent.admin") / "static"
        return cls(
            (folder / "index.html").read_text("utf-8"),
            (folder / "login.html").read_text("utf-8"),
            {name: (folder / name).read_bytes() for name in ASSETS},
        )


def problem(status: int, title: str, detail: str) -> web.Response:
    body = problem_body(status, title, detail, new_request_id(), slug_of(title))
    return web.Response(body=body, status=status, content_type=PROBLEM_JSON)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


class HealthPage:
    def __init__(
        self,
        files: PageFiles,
        monitor: Monitor,
        digest: bytes | None,
        bearer_ok: Callable[[web.Request], bool],
        sessions: Sessions | None = None,
    ) -> None:
        """`bearer_ok` says whether a request carries the admin token (or none is set)."""
        self.files, self.monitor, self.digest = files, monitor, digest
        self.bearer_ok = bearer_ok
        self.sessions = sessions or Sessions()

    def session_of(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(cookie_name(request.url.port)))

    def authorised(self, request: web.Request) -> bool:
        """Whether the request has a live session or passes the token check."""
        return self.session_of(request) is not None or self.bearer_ok(request)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        for name in ASSETS:
            app.router.add_get(f"/{name}", self.asset)
        app.router.add_post("/actions/sources/{name}/test", self.test_source)
        app.router.add_post("/actions/tunnel/reconnect", self.reconnect)

    async def index(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return self._login_form("", 200)
        known = self.session_of(request)
        if known is None and self.digest is None and not _loopback_host(request):
            return problem(
                403, "Forbidden",
                "without an admin token the page opens only at a loopback address, such as "
                f"http://127.0.0.1:{request.url.port}/ (another name may be a rebound DNS name)",
            )  # fmt: skip
        session = known or self.sessions.open()
        page = self.files.index.replace("__CSRF__", html.escape(session.csrf))
        page = page.replace("__LOGIN__", "yes" if self.digest is not None else "no")
        response = _page(page)
        if known is None:
            self._set_cookie(request, response, session)
        return response

    async def login(self, request: web.Request) -> web.Response:
        if _cross_site(request):
            return _refused_cross_site()
        form = await request.post()
        token = form.get("token")
        if self.digest is None or not isinstance(token, str) or not self._token_ok(token):
            return self._login_form("That is not this agent's admin token.", 401)
        session = self.sessions.open()
        response = web.Response(status=303, headers={"Location": "/"})
        self._set_cookie(request, response, session)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        refused = _refusal(request, self.session_of(request))
        if refused is not None:
            return refused
        session = self.session_of(request)
        assert session is not None  # _refusal let it through
        self.sessions.close(session.id)
        response = _json({"signed_out": True})
        response.del_cookie(cookie_name(request.url.port), path="/")
        return response

    async def asset(self, request: web.Request) -> web.Response:
        name = request.path.removeprefix("/")
        return web.Response(body=self.files.assets[name], content_type=ASSETS[name])

    async def test_source(self, request: web.Request) -> web.Response:
        refused = _refusal(request, self.session_of(request))
        if refused is not None:
            return refused
        name = request.match_info["name"]
        if name not in self.monitor.adapters:
            return problem(404, "Not found", f"there is no source {name!r} in the config")
        state = await self.monitor.probe_now(name)
        latency = None if state.latency is None else round(state.latency * 1000, 3)
        return _json({"source": name, "up": state.up, "latency_ms": latency,
                      "error": state.probe_error})  # fmt: skip

    async def reconnect(self, request: web.Request) -> web.Response:
        refused = _refusal(request, self.session_of(request))
        if refused is not None:
            return refused
        tunnel = self.monitor.tunnel
        if tunnel is None:
            return problem(409, "Conflict", "this agent has no tunnel: add tunnel: to its config")
        number = await _connection_number(request)
        if number is not None and number not in tunnel.status.slots:
            return problem(404, "Not found", f"there is no tunnel connection {number}")
        try:
            async with asyncio.timeout(RECONNECT_TIMEOUT):
                dropped = await tunnel.reconnect(number)
        except TimeoutError:
            return _json({"reconnected": None, "detail": "still reconnecting"}, 202)
        return _json({"reconnected": dropped})

    def _token_ok(self, token: str) -> bool:
        assert self.digest is not None
        given = hashlib.sha256(token.encode()).digest()
        return find_by_digest(given, [(self.digest, True)]) is not None

    def _login_form(self, error: str, status: int) -> web.Response:
        return _page(self.files.login.replace("__ERROR__", html.escape(error)), status)

    def _set_cookie(self, request: web.Request, response: web.Response, session: Session) -> None:
        response.set_cookie(
            cookie_name(request.url.port), session.id, path="/", httponly=True,
            samesite="Strict", max_age=int(self.sessions.lifetime),
        )  # fmt: skip


def _page(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def _loopback_host(request: web.Request) -> bool:
    """Whether the Host the browser sent is loopback: a page of another site that got its
    DNS name pointed at 127.0.0.1 (DNS rebinding) sends its own name instead."""
    return is_loopback(request.url.host or "")


def _cross_site(request: web.Request) -> bool:
    return request.headers.get("Sec-Fetch-Site") == "cross-site"


def _refused_cross_site() -> web.Response:
    return problem(403, "Forbidden", "the admin page's actions are refused to other sites")


def _refusal(request: web.Request, session: Session | None) -> web.Response | None:
    """The 403 for an action without its session's CSRF token, or None."""
    if _cross_site(request):
        return _refused_cross_site()
    if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        return problem(
            403, "Forbidden",
            f"an action needs the page's session cookie and its token in {CSRF_HEADER}; "
            "reload the admin page and use its buttons",
        )  # fmt: skip
    return None


async def _connection_number(request: web.Request) -> int | None:
    """`{"connection": N}` from the body, or None (every connection) for `{}` or no body."""
    usage = 'the body is empty, {} or {"connection": N}, N a connection\'s number'
    raw = await request.read()
    try:
        body: Any = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        body = None
    number = body.get("connection") if isinstance(body, dict) else False
    if number is None or (isinstance(number, int) and not isinstance(number, bool)):
        return number
    raise web.HTTPBadRequest(reason=usage)
