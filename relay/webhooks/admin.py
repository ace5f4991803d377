"""The admin port's webhook paths, for `bridgehead-relay webhooks` (the admin token only,
on loopback too: a replay changes what subscribers receive).

    GET  /webhooks                      each subscription and its deliveries per agent
    GET  /webhooks/{name}/consumers     its consumer state on each agent, dead letters included
    POST /webhooks/{name}/replay        {"from": SEQ, "agents": [ID, ...]}: deliver again
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from bridgehead.relay.webhooks.desk import UnknownWebhook, Webhooks

Handler = Callable[[web.Request], Awaitable[web.Response]]


def add_webhook_routes(
    app: web.Application, webhooks: Webhooks, is_admin: Callable[[web.Request], bool]
) -> None:
    def admin(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.Response:
            if not is_admin(request):
                return _problem(401, "send Authorization: Bearer <the relay's admin token>")
            try:
                return await handler(request)
            except UnknownWebhook as exc:
                return _problem(404, str(exc))

        return checked

    async def listing(request: web.Request) -> web.Response:
        return _json({"webhooks": webhooks.views()})

    async def consumers(request: web.Request) -> web.Response:
        return _json({"agents": await webhooks.consumers(request.match_info["name"])})

    async def replay(request: web.Request) -> web.Response:
        try:
            message = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            message = None
        start = message.get("from") if isinstance(message, dict) else None
        agents = message.get("agents", []) if isinstance(message, dict) else None
        if (
            not isinstance(start, int)
            or isinstance(start, bool)
            or start < 1
            or not (isinstance(agents, list) and all(isinstance(a, str) for a in agents))
        ):
            return _problem(400, 'send {"from": SEQ (1 or more), "agents": [ID, ...]}')
        name = request.match_info["name"]
        return _json({"agents": await webhooks.replay(name, start, agents)})

    app.router.add_get("/webhooks", admin(listing))
    app.router.add_get("/webhooks/{name}/consumers", admin(consumers))
    app.router.add_post("/webhooks/{name}/replay", admin(replay))


def _json(data: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _problem(status: int, detail: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"detail": detail}, status=status, headers=headers)
