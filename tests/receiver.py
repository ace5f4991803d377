# A webhook receiver for the tests: a real aiohttp server on 127.0.0.1 that verifies each
# delivery's Standard Webhooks signature, keeps what it accepted, and answers as the test says
# (500s, 429 with Retry-After, 410), so retries and ordering are seen from the outside.
from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"bridgehead-test-webhook-secret!!").decode()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str
    answer: Callable[[Delivery], tuple[int, dict[str, str]]] = lambda d: (204, {})
    """The status and headers to answer a verified delivery with."""
    accepted: list[Delivery] = field(default_factory=list)
    refused: int = 0
    """Deliveries answered with anything but 2xx."""
    forged: int = 0
    """Deliveries whose signature did not verify (answered 400)."""

    def by_key(self) -> dict[str, list[int]]:
        """The sequences accepted, per partition key, in the order they came."""
        out: dict[str, list[int]] = {}
        for d in self.accepted:
            out.setdefault(d.headers["ce-partitionkey"], []).append(int(d.headers["ce-sequence"]))
        return out


@asynccontextmanager
async def receiving(secret: str = SECRET) -> AsyncIterator[Receiver]:
    hook = Webhook(secret)
    receiver = Receiver("")

    async def take(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            hook.verify(body, headers)
        except Exception:
            receiver.forged += 1
            return web.Response(status=400)
        delivery = Delivery(headers, orjson.loads(body))
        status, extra = receiver.answer(delivery)
        if 200 <= status < 300:
            receiver.accepted.append(delivery)
        else:
            receiver.refused += 1
        return web.Response(status=status, headers=extra)

    app = web.Application()
    app.router.add_post("/hook", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
