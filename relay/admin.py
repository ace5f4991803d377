"""The relay's admin port: /healthz, /readyz, /metrics (Prometheus) and the agents list.

/readyz is 503 with the reasons (relay.readiness) while the agents' CA file or the state
folder cannot be read.

The agents list needs a bearer token: a caller's shows the agents that caller may reach
(not a caller bound to a client certificate: this port is plain HTTP and sees none); the
admin token (made at first start in `state_dir/admin.token`, 0600, and read by
`bridgehead-relay agents list`; or the one whose SHA-256 is `admin.token_sha256`) shows them
all. Off loopback every path, /metrics included, needs an admin token. Metrics come from a
registry of this relay's own, so several relays in one process (tests) never mix their
figures.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from bridgehead.certs.keyfiles import load_or_create_secret
from bridgehead.common.auth import bearer_token, find_by_digest
from bridgehead.common.errors import Unauthorized
from bridgehead.common.problem import JSON
from bridgehead.relay.config import CallerConfig, RelayAdmin
from bridgehead.relay.registry import AgentView, Registry
from bridgehead.relay.webhooks.admin import add_webhook_routes
from bridgehead.relay.webhooks.desk import Webhooks

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name, not a secret
TOKEN_BYTES = 32


def admin_token(state_dir: Path) -> str:
    """The admin token, made on first use."""
    return load_or_create_secret(state_dir / ADMIN_TOKEN_FILE, TOKEN_BYTES).hex()


def read_admin_token(state_dir: Path) -> str:
    """The admin token a relay made in `state_dir` (FileNotFoundError if it never ran)."""
    data = (state_dir / ADMIN_TOKEN_FILE).read_bytes()
    if len(data) < TOKEN_BYTES:
        raise ValueError(f"{state_dir / ADMIN_TOKEN_FILE} is damaged; delete it and restart")
    return data.hex()


def bearer_digest(request: web.Request) -> bytes | None:
    """The SHA-256 of the request's bearer token, for constant-time compares; None if none."""
    try:
        return hashlib.sha256(bearer_token(request.headers).encode()).digest()
    except Unauthorized:
        return None


class RelayMetrics:
    def __init__(self, registry: Registry) -> None:
        self.prometheus = CollectorRegistry()
        self.requests = Counter(
            "bridgehead_relay_requests", "Caller requests by outcome status.", ["status"],
            registry=self.prometheus,
        )  # fmt: skip
        agents = Gauge(
            "bridgehead_relay_agents_connected",
            "Agents with a tunnel up.",
            registry=self.prometheus,
        )
        agents.set_function(lambda: len(registry.views()))
        links = Gauge(
            "bridgehead_relay_tunnel_connections",
            "Tunnel connections up.",
            registry=self.prometheus,
        )
        links.set_function(lambda: sum(v.connections for v in registry.views()))
        streams = Gauge(
            "bridgehead_relay_streams_in_flight", "Requests in flight.", registry=self.prometheus
        )
        streams.set_function(lambda: sum(v.in_flight for v in registry.views()))


def admin_app(
    registry: Registry,
    metrics: RelayMetrics,
    identify: Callable[[web.Request], CallerConfig | None],
    token: str,
    where: RelayAdmin,
    *,
    unready: Callable[[], list[str]] = list,
    webhooks: Webhooks | None = None,
) -> web.Application:
    """`identify` authenticates callers' bearer tokens; `token` is the admin's, and so is
    `where.token_sha256` when set. Off loopback, every path needs an admin token.
    `unready` (blocking: run in a thread) says why the relay is not ready; none: ready."""
    digests = [hashlib.sha256(token.encode()).digest()]
    if where.token_sha256 is not None:
        digests.append(bytes.fromhex(where.token_sha256))
    is_admin = _bearer_check(digests)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        reasons = await asyncio.to_thread(unready)
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def prometheus(request: web.Request) -> web.Response:
        body = generate_latest(metrics.prometheus)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def agents(request: web.Request) -> web.Response:
        if is_admin(request):
            return _listing(registry.views())
        caller = identify(request)
        if caller is None or caller.cert_sha256 is not None:
            detail = (
                "send Authorization: Bearer <token> with the admin token or a caller token "
                "that is not bound to a client certificate (this port sees none)"
            )
            return web.json_response(
                {"detail": detail}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return _listing(
            view for view in registry.views()
            if view.agent_id in caller.agents
            or (view.group is not None and view.group in caller.groups)
        )  # fmt: skip

    @web.middleware
    async def admin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_admin(request):
            return await handler(request)
        detail = (
            "this admin port is not on loopback: send Authorization: Bearer <admin token> "
            "(the token whose SHA-256 is admin.token_sha256)"
        )
        return web.json_response(
            {"detail": detail}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )

    app = web.Application(middlewares=[] if where.loopback else [admin_only])
    if webhooks is not None:
        add_webhook_routes(app, webhooks, is_admin)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/agents", agents)
    return app


def _bearer_check(digests: list[bytes]) -> Callable[[web.Request], bool]:
    """Whether a request's bearer token has one of `digests` as its SHA-256 (each compared
    in constant time)."""

    def check(request: web.Request) -> bool:
        given = bearer_digest(request)
        if given is None:
            return False
        return find_by_digest(given, ((expected, True) for expected in digests)) is not None

    return check


def _listing(views: Iterable[AgentView]) -> web.Response:
    body = orjson.dumps({"agents": [view.__dict__ for view in views]})
    return web.Response(body=body, content_type=JSON)
