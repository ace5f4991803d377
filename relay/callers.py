"""The caller port: cloud services call `/agents/{id}/v1/...` or `/groups/{group}/v1/...`.

The caller's bearer token must be one the relay knows (SHA-256, constant-time compare) and
allowed to reach that agent or group; the request then goes down the tunnel unchanged,
`Authorization` included, so the agent applies its own auth as well, and the path after the
prefix byte for byte. A caller bound to a client certificate (`cert_sha256`) must also
present that certificate. Bodies stream both ways, within the relay's own size and time
limits. No agent connected: 502; every stream the agent allows busy past `stream_wait`: 503;
the caller's own cap reached: 429; no answer in `request_timeout`: 504; a caller that goes
away resets its stream (the agent cancels the query). Failed authentications are throttled
per source address (429). The request's id follows the agent's rule (common.requestid): the
caller's if valid, a fresh one if none, a 400 if it breaks the rule. A forwarded path under
`/.bridgehead/` (however encoded) is the relay's own control channel to the agent
(common.tunnel.control): a caller asking for it gets a 404, and no stream is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from bridgehead.common import requestid
from bridgehead.common.auth import find_by_digest
from bridgehead.common.errors import BadRequest
from bridgehead.common.problem import PROBLEM_JSON, problem_body, slug_of
from bridgehead.common.tunnel import control, wire
from bridgehead.relay.admin import RelayMetrics, bearer_digest
from bridgehead.relay.admission import CallerBusy, CallerSlots, FailureThrottle
from bridgehead.relay.bodies import BodyRefused, bounded_body, declared_too_large
from bridgehead.relay.config import CallerConfig, RelayConfig
from bridgehead.relay.link import AgentLink, BadExchange, BodyCut, LinkClosed, Reply, StreamRefused
from bridgehead.relay.registry import Registry, least_busy

log = logging.getLogger("bridgehead.relay")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
     "host", "content-length", "proxy-authorization", "trailer"}
)  # fmt: skip
RETRY = {"Retry-After": "1"}


def problem(status: int, title: str, detail: str, request_id: str, **headers: str) -> web.Response:
    """The relay's own answer for a request it does not pass on (its type named by its title)."""
    body = problem_body(status, title, detail, request_id, slug_of(title))
    return web.Response(
        status=status, body=body, content_type=PROBLEM_JSON,
        headers={"X-Request-Id": request_id, **headers},
    )  # fmt: skip


class Callers:
    def __init__(self, config: RelayConfig, registry: Registry, metrics: RelayMetrics) -> None:
        self.registry, self.metrics = registry, metrics
        self.reconfigure(config)
        self.limits = config.limits
        self.slots = CallerSlots(self.limits.streams_per_caller)
        self.throttle = FailureThrottle(self.limits.auth_failures, self.limits.auth_window)

    def reconfigure(self, config: RelayConfig) -> None:
        """Who may call and how long an agent may take, from the next request on."""
        self.config = config
        self._tokens = [(bytes.fromhex(c.token_sha256), c) for c in config.callers]

    def app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            self.metrics.requests.labels(str(response.status)).inc()
            return response

        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[count])
        app.router.add_route("*", "/agents/{agent}/{tail:(?s:.*)}", self.to_agent)
        app.router.add_route("*", "/groups/{group}/{tail:(?s:.*)}", self.to_group)
        return app

    def identify(self, request: web.Request) -> CallerConfig | None:
        digest = bearer_digest(request)
        if digest is None:
            return None
        return find_by_digest(digest, self._tokens)

    async def to_agent(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]

        def permits(caller: CallerConfig, link: AgentLink | None) -> bool:
            # Decided on the link that serves: its certificate's group, not another link's.
            group = link.identity.group if link is not None else None
            return agent in caller.agents or (group is not None and group in caller.groups)

        route = Route(f"agent {agent!r}", agent, lambda: self.registry.agent_links(agent), permits)
        return await self._route(request, route)

    async def to_group(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info["group"]

        def permits(caller: CallerConfig, link: AgentLink | None) -> bool:
            return group in caller.groups and (link is None or link.identity.group == group)

        route = Route(f"group {group!r}", group, lambda: self.registry.group_links(group), permits)
        return await self._route(request, route)

    async def _route(self, request: web.Request, route: Route) -> web.StreamResponse:
        request_id, bad_id = caller_request_id(request)
        with requestid.bound(request_id):  # every line logged for it names it
            response = await self._routed(request, route, request_id, bad_id)
            log.debug("%s to %s: %d", request.method, route.what, response.status)
            return response

    async def _routed(
        self, request: web.Request, route: Route, request_id: str, bad_id: BadRequest | None
    ) -> web.StreamResponse:
        if bad_id is not None:
            return problem(bad_id.status, bad_id.title, bad_id.detail, request_id)
        caller = self._caller(request, request_id)
        if isinstance(caller, web.Response):
            return caller
        refusal = self._refusal(request, caller, route, request_id)
        if refusal is not None:
            return refusal
        try:
            async with self.slots.hold(caller.name, self.limits.stream_wait):
                return await self._send(request, caller, route, request_id)
        except CallerBusy:
            detail = (f"{caller.name} already has {self.limits.streams_per_caller} requests "
                      "in flight; wait for some to finish")  # fmt: skip
            return problem(429, "Too Many Requests", detail, request_id, **RETRY)

    async def _send(
        self, request: web.Request, caller: CallerConfig, route: Route, request_id: str
    ) -> web.StreamResponse:
        for attempt in (1, 2):
            link = await self._link_with_room(route, request_id)
            if isinstance(link, web.Response):
                return link
            if not route.permits(caller, link):
                return problem(403, "Forbidden", f"{caller.name} may not reach {route.what}",
                               request_id)  # fmt: skip
            try:
                return await self._forward(request, link, request_id)
            except BadExchange as exc:
                return problem(502, "Bad agent response", str(exc), request_id)
            except LinkClosed as exc:
                # Unanswered and safe to send again: refused unprocessed, or a bodiless read.
                retry = isinstance(exc, StreamRefused) or request.method in SAFE_METHODS
                if attempt == 2 or request.can_read_body or not retry:
                    return problem(502, "Agent connection lost", str(exc), request_id)
        raise AssertionError("unreachable")

    async def _link_with_room(self, route: Route, request_id: str) -> AgentLink | web.Response:
        """A link that may take one more stream now; within `stream_wait`, else a problem."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.stream_wait
        while True:
            links = route.links()
            if not links:
                detail = (f"{route.what} has no tunnel connected to this relay; "
                          "check the agent is running")  # fmt: skip
                return problem(502, "Agent not connected", detail, request_id)
            link = least_busy(links)
            if link is not None:
                return link  # no await between this and opening the stream
            left = deadline - loop.time()
            if left <= 0:
                detail = (f"every tunnel stream of {route.what} is busy; "
                          "retry after a moment")  # fmt: skip
                return problem(503, "Agent busy", detail, request_id, **RETRY)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.registry.room()

    def _caller(self, request: web.Request, request_id: str) -> CallerConfig | web.Response:
        """The authenticated caller, or the problem answer (failures count per address)."""
        repeated = sorted(n for n in wire.SINGLETONS if len(request.headers.getall(n, ())) > 1)
        if repeated:
            detail = f"send one {repeated[0]} header, not several"
            return problem(400, "Bad Request", detail, request_id)
        address = request.remote or "?"
        wait = self.throttle.retry_after(address)
        if wait is not None:
            detail = f"too many failed authentications from {address}; retry in {wait} s"
            return problem(
                429, "Too Many Requests", detail, request_id, **{"Retry-After": str(wait)}
            )
        caller = self.identify(request)
        challenge = {"WWW-Authenticate": "Bearer"}
        if caller is None:
            self.throttle.failed(address)
            detail = "send Authorization: Bearer <token> with a token this relay knows"
            return problem(401, "Unauthorized", detail, request_id, **challenge)
        if not _holds_certificate(request, caller):
            self.throttle.failed(address)
            detail = (f"{caller.name}'s token is bound to a client certificate; "
                      "connect with that certificate")  # fmt: skip
            return problem(401, "Unauthorized", detail, request_id, **challenge)
        return caller

    def _refusal(
        self, request: web.Request, caller: CallerConfig, route: Route, request_id: str
    ) -> web.Response | None:
        """The answer for a caller who may not go on (before any stream is taken), or None."""
        links = route.links()
        if not route.permits(caller, links[0] if links else None):
            return problem(403, "Forbidden", f"{caller.name} may not reach {route.what}",
                           request_id)  # fmt: skip
        path = forwarded_path(request, route.name)
        if path is None:
            detail = ("write the /agents/ID or /groups/GROUP prefix without percent-encoding "
                      "or extra slashes")  # fmt: skip
            return problem(400, "Bad Request", detail, request_id)
        if control.reserved(path):
            detail = f"{control.PREFIX} is reserved for the relay; agents serve no such path"
            return problem(404, "Not Found", detail, request_id)
        oversized = declared_too_large(request, self.limits)
        if oversized is not None:
            return _closing(problem(oversized.status, oversized.title, str(oversized), request_id))
        return None

    async def _forward(
        self, request: web.Request, link: AgentLink, request_id: str
    ) -> web.StreamResponse:
        path = forwarded_path(request, request.match_info.get("agent") or
                              request.match_info["group"])  # fmt: skip
        assert path is not None  # checked in _refusal
        headers = [
            (k.lower(), v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        ]
        if "x-request-id" not in {k for k, _ in headers}:
            headers.append(("x-request-id", request_id))
        body = bounded_body(request, self.limits) if request.can_read_body else None
        try:
            # Awaited inline (not wait_for's task): the stream counts as in flight on this
            # link before the handler first yields, so a burst spreads over the links.
            async with asyncio.timeout(self.config.request_timeout):
                sid, reply = await link.request(request.method, path, headers, body)
        except TimeoutError:
            detail = f"the agent did not answer within {self.config.request_timeout:g} s"
            return problem(504, "Agent timeout", detail, request_id)
        except BodyRefused as exc:
            return _closing(problem(exc.status, exc.title, str(exc), request_id))
        return await self._relay_reply(request, link, sid, reply)

    async def _relay_reply(
        self, request: web.Request, link: AgentLink, sid: int, reply: Reply
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status)
        for name, value in reply.headers:
            if name == "content-length":
                response.content_length = int(value)  # sent as is, not re-chunked
            elif name not in HOP_BY_HOP:
                response.headers.add(name, value)
        completed, expected, sent = False, response.content_length, 0
        if request.method == "HEAD" or reply.status in (204, 304):
            expected = None  # the length of a body that is not sent
        try:
            await response.prepare(request)
            async for chunk in reply.body:  # h2 itself refuses more than content-length
                sent += len(chunk)
                await response.write(chunk)
            if expected is not None and sent != expected:
                raise BodyCut(f"the agent's answer ended after {sent} of {expected} bytes")
            await response.write_eof()
            completed = True
        except BodyCut as exc:
            log.info("agent %s: %s; cutting the caller's response", link.identity.agent_id, exc)
            if request.transport is not None:
                request.transport.abort()  # an incomplete body must not look complete
        finally:
            if not completed:
                await link.cancel(sid)
        return response


@dataclass(frozen=True)
class Route:
    """Where a request goes: `what` for messages, `name` the agent id or group in the path,
    `links` those that may serve it, `permits` whether a caller may use a link (or, with
    None, the target at all)."""

    what: str
    name: str
    links: Callable[[], list[AgentLink]]
    permits: Callable[[CallerConfig, AgentLink | None], bool]


def caller_request_id(request: web.Request) -> tuple[str, BadRequest | None]:
    """The request's id by the rule the agent applies too (common.requestid), and the 400 to
    answer when the caller's breaks it; a repeated X-Request-Id counts as none (it is refused
    with the other repeated headers, under a fresh id)."""
    given = request.headers.getall("X-Request-Id", [])
    return requestid.request_id(given[0] if len(given) == 1 else None)


def forwarded_path(request: web.Request, name: str) -> str | None:
    """The request's path and query after its `/agents/ID` or `/groups/G` prefix, byte for
    byte as the caller sent them (nothing decoded); None if the prefix itself is encoded."""
    parts = request.raw_path.split("/", 3)
    if len(parts) < 4 or parts[1] not in ("agents", "groups") or parts[2] != name:
        return None
    return "/" + parts[3]


def _closing(response: web.Response) -> web.Response:
    """The response, and the connection closed after it (the rest of the body is unread)."""
    response.force_close()
    return response


def _holds_certificate(request: web.Request, caller: CallerConfig) -> bool:
    """Whether the request came with the certificate the caller is bound to (if it is)."""
    if caller.cert_sha256 is None:
        return True
    tls = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if not der:
        return False
    return hmac.compare_digest(hashlib.sha256(der).hexdigest(), caller.cert_sha256)
