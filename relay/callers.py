"""The caller port: cloud services call `/agents/{id}/v1/...` or `/groups/{group}/v1/...`.

The caller's bearer token must be one the relay knows (SHA-256, constant-time compare) and
allowed to reach that agent or group; the request then goes down the tunnel unchanged,
`Authorization` included, so the agent applies its own auth as well. A caller bound to a
client certificate (`cert_sha256`) must also present that certificate. Bodies stream both
ways. No agent connected: 502; no answer in `request_timeout`: 504; a caller that goes
away resets its stream (the agent cancels the query).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from agent.tunnel import wire
from relay.admin import RelayMetrics, bearer_digest
from relay.config import CallerConfig, RelayConfig
from relay.link import AgentLink, BadExchange, BodyCut, LinkClosed, Reply, StreamRefused
from relay.registry import Registry

log = logging.getLogger("bridgehead.relay")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
     "host", "content-length", "proxy-authorization", "trailer"}
)  # fmt: skip


def problem(status: int, title: str, detail: str, request_id: str, **headers: str) -> web.Response:
    body = {
        "type": f"https://bridgehead.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/problem+json",
        headers={"X-Request-Id": request_id, **headers},
    )  # fmt: skip


class Callers:
    def __init__(self, config: RelayConfig, registry: Registry, metrics: RelayMetrics) -> None:
        self.config, self.registry, self.metrics = config, registry, metrics
        self._tokens = [(bytes.fromhex(c.token_sha256), c) for c in config.callers]

    def app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            self.metrics.requests.labels(str(response.status)).inc()
            return response

        app = web.Application(client_max_size=1024**3, middlewares=[count])
        app.router.add_route("*", "/agents/{agent}/{tail:(?s:.*)}", self.to_agent)
        app.router.add_route("*", "/groups/{group}/{tail:(?s:.*)}", self.to_group)
        return app

    def identify(self, request: web.Request) -> CallerConfig | None:
        digest = bearer_digest(request)
        if digest is None:
            return None
        found = None
        for expected, caller in self._tokens:
            if hmac.compare_digest(digest, expected) and found is None:
                found = caller
        return found

    async def to_agent(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]

        def allowed(caller: CallerConfig) -> bool:
            return agent in caller.agents or self.registry.group_of(agent) in caller.groups

        return await self._route(
            request, allowed, lambda: self.registry.pick_agent(agent), f"agent {agent!r}"
        )

    async def to_group(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info["group"]
        return await self._route(
            request,
            lambda caller: group in caller.groups,
            lambda: self.registry.pick_group(group),
            f"group {group!r}",
        )

    async def _route(
        self,
        request: web.Request,
        allowed: Callable[[CallerConfig], bool],
        pick: Callable[[], AgentLink | None],
        what: str,
    ) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or secrets.token_hex(12)
        refusal = self._refusal(request, allowed, what, request_id)
        if refusal is not None:
            return refusal
        for attempt in (1, 2):
            link = pick()
            if link is None:
                detail = f"{what} has no tunnel connected to this relay; check the agent is running"
                return problem(502, "Agent not connected", detail, request_id)
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

    def _refusal(
        self,
        request: web.Request,
        allowed: Callable[[CallerConfig], bool],
        what: str,
        request_id: str,
    ) -> web.Response | None:
        """The problem answer for a caller who may not go on, or None."""
        challenge = {"WWW-Authenticate": "Bearer"}
        repeated = sorted(n for n in wire.SINGLETONS if len(request.headers.getall(n, ())) > 1)
        if repeated:
            detail = f"send one {repeated[0]} header, not several"
            return problem(400, "Bad Request", detail, request_id)
        caller = self.identify(request)
        if caller is None:
            detail = "send Authorization: Bearer <token> with a token this relay knows"
            return problem(401, "Unauthorized", detail, request_id, **challenge)
        if not _holds_certificate(request, caller):
            detail = (f"{caller.name}'s token is bound to a client certificate; "
                      "connect with that certificate")  # fmt: skip
            return problem(401, "Unauthorized", detail, request_id, **challenge)
        if not allowed(caller):
            return problem(403, "Forbidden", f"{caller.name} may not reach {what}", request_id)
        return None

    async def _forward(
        self, request: web.Request, link: AgentLink, request_id: str
    ) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        if request.query_string:
            path += "?" + request.query_string
        headers = [
            (k.lower(), v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        ]
        if "x-request-id" not in {k for k, _ in headers}:
            headers.append(("x-request-id", request_id))
        body = _body(request) if request.can_read_body else None
        try:
            # Awaited inline (not wait_for's task): the stream counts as in flight on this
            # link before the handler first yields, so a burst spreads over the links.
            async with asyncio.timeout(self.config.request_timeout):
                sid, reply = await link.request(request.method, path, headers, body)
        except TimeoutError:
            detail = f"the agent did not answer within {self.config.request_timeout:g} s"
            return problem(504, "Agent timeout", detail, request_id)
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


def _holds_certificate(request: web.Request, caller: CallerConfig) -> bool:
    """Whether the request came with the certificate the caller is bound to (if it is)."""
    if caller.cert_sha256 is None:
        return True
    tls = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if not der:
        return False
    return hmac.compare_digest(hashlib.sha256(der).hexdigest(), caller.cert_sha256)


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(1 << 16):
        yield chunk
