"""The admin listener's aiohttp application: /healthz, /readyz, /status.json, /metrics,
and the health page (`agent.admin.page`) at /.

Rules: handlers only ask the `Monitor` for a snapshot (and the jobs, `agent.admin.runs`, for
their last runs) and hand it to the pure functions of `agent.admin.status`; with a token
configured every request needs `Authorization: Bearer TOKEN` (its SHA-256 compared in
constant time) or the page's session cookie, 401 otherwise (the page's own paths,
`PUBLIC_PATHS`, answer a login form instead); every answer, refusals included, carries
no-store caching, nosniff, frame denial and a Content-Security-Policy that
allows nothing, except the page's HTML, whose CSP allows only its own files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridgehead.agent.admin.metrics import AgentMetrics
from bridgehead.agent.admin.monitor import Monitor
from bridgehead.agent.admin.observer import RequestObserver
from bridgehead.agent.admin.page import PUBLIC_PATHS, HealthPage, PageFiles
from bridgehead.agent.admin.runs import job_states
from bridgehead.agent.admin.status import About, readiness, status_document
from bridgehead.agent.jobs.runner import Jobs
from bridgehead.common.auth import bearer_token, find_by_digest
from bridgehead.common.errors import Unauthorized
from bridgehead.common.problem import JSON

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def token_check(digest: bytes | None) -> Callable[[web.Request], bool]:
    """Whether a request may use the admin endpoints: any, without a token configured."""

    def allowed(request: web.Request) -> bool:
        if digest is None:
            return True
        try:
            given = hashlib.sha256(bearer_token(request.headers).encode()).digest()
        except Unauthorized:
            return False
        return find_by_digest(given, [(digest, True)]) is not None

    return allowed


def _middleware(page: HealthPage) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if page.authorised(request) or request.path in PUBLIC_PATHS:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # 404, 405: answered with the same headers
                response = _json({"detail": exc.reason}, exc.status)
        else:
            response = _json(
                {"detail": "send Authorization: Bearer <admin token> (admin.token in agent.yaml)"},
                401,
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="bridgehead-admin"'
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)  # the page sets its own CSP
        return response

    return guard


def admin_app(
    monitor: Monitor,
    metrics: AgentMetrics,
    observer: RequestObserver,
    about: About,
    digest: bytes | None,
    *,
    files: PageFiles,
    jobs: Jobs | None = None,
) -> web.Application:
    """The admin endpoints and the health page; `files` from `PageFiles.load`; `jobs` the
    agent's job service, None when it has no jobs."""
    page = HealthPage(files, monitor, digest, token_check(digest))

    async def healthz(request: web.Request) -> web.Response:
        return _json({"status": "alive"})  # answered by the event loop itself

    async def readyz(request: web.Request) -> web.Response:
        ready, body = readiness(await monitor.snapshot())
        return _json(body, 200 if ready else 503)

    async def status(request: web.Request) -> web.Response:
        snapshot = await monitor.snapshot()
        requests = [r.as_dict() for r in observer.window.stats()]
        errors = [e.as_dict() for e in reversed(observer.errors)]
        runs = await job_states(jobs)
        return _json(status_document(snapshot, about, requests, errors, runs))

    async def prometheus(request: web.Request) -> web.Response:
        await monitor.snapshot()  # the state collector reads monitor.last
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[_middleware(page)])
    page.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status.json", status)
    app.router.add_get("/metrics", prometheus)
    return app
