"""The relay's admin port: /healthz, /readyz, /metrics (Prometheus) and the agents list.

The agents list needs a caller's bearer token and shows only the agents that caller may
reach. Metrics come from a registry of this relay's own, so several relays in one
process (tests) never mix their figures.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from relay.config import CallerConfig
from relay.registry import Registry


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
) -> web.Application:
    """`identify` authenticates the agents list with the callers' bearer tokens."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def prometheus(request: web.Request) -> web.Response:
        body = generate_latest(metrics.prometheus)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def agents(request: web.Request) -> web.Response:
        caller = identify(request)
        if caller is None:
            return web.json_response(
                {"detail": "send Authorization: Bearer <caller token>"}, status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        visible = [
            view.__dict__
            for view in registry.views()
            if view.agent_id in caller.agents
            or (view.group is not None and view.group in caller.groups)
        ]
        return web.Response(body=orjson.dumps({"agents": visible}), content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/agents", agents)
    return app
