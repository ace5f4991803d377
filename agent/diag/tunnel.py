"""The way to the relay, checked one step at a time, for `bridgehead diag`: name
resolution, TCP connect, the proxy's CONNECT (with `tunnel.proxy` or HTTPS_PROXY), the TLS
1.3 handshake with the agent's certificate against `tunnel.ca`, the relay accepting the
certificate, and ALPN `bridgehead-tunnel/1`. The first step that fails ends the check and
says why; a proxy URL's password is never shown.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from bridgehead.agent.config.model import TunnelConfig
from bridgehead.agent.tunnel.client import client_context
from bridgehead.agent.tunnel.proxy import proxy_for, request_tunnel
from bridgehead.common.redact import scrub
from bridgehead.common.tunnel import ALPN

STEP_SECONDS = 5.0
T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}: {self.detail}"


class StepFailed(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.step = Step(name, False, detail)


def failed_at(steps: list[Step]) -> str | None:
    """The name of the step that failed, None when every step passed."""
    return next((step.name for step in steps if not step.ok), None)


def render(steps: list[Step]) -> str:
    where = failed_at(steps)
    verdict = "the relay can be reached" if where is None else f"failed at: {where}"
    return "\n".join([*map(str, steps), verdict]) + "\n"


async def check_tunnel(config: TunnelConfig, seconds: float = STEP_SECONDS) -> list[Step]:
    """Every step up to the first that fails (each within `seconds`); a failure is a step,
    never an exception."""
    steps: list[Step] = []
    try:
        await _walk(config, seconds, steps)
    except StepFailed as exc:
        steps.append(exc.step)
    return steps


async def _walk(config: TunnelConfig, seconds: float, steps: list[Step]) -> None:
    relay = config.relay
    proxy = proxy_for(relay.host, config.proxy)
    target = urlsplit(proxy) if proxy else None
    host = (target.hostname or "") if target else relay.host
    port = (target.port or 3128) if target else relay.port
    what = f"proxy {host}:{port}" if target else f"relay {relay}"
    steps.append(await _timed("dns", seconds, _resolve(host, port, what)))
    reader, writer = await _timed("tcp", seconds, asyncio.open_connection(host, port))
    steps.append(Step("tcp", True, f"connected to {what}"))
    try:
        if target is not None:
            authority = f"{relay.host}:{relay.port}"
            asking = request_tunnel(reader, writer, authority, target.username, target.password)
            await _timed("proxy", seconds, asking)
            steps.append(Step("proxy", True, f"CONNECT {authority} accepted"))
        steps.extend(await _tls(config, seconds, reader, writer))
    finally:
        writer.close()


async def _tls(
    config: TunnelConfig,
    seconds: float,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> list[Step]:
    try:
        context = await asyncio.to_thread(client_context, config)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StepFailed("tls", f"cannot load tunnel.ca, .cert or .key: {reason}") from None
    await _timed("tls", seconds, writer.start_tls(context, server_hostname=config.relay.host))
    tls = writer.get_extra_info("ssl_object")
    done = [Step("tls", True, f"{tls.version()}; the relay's certificate is trusted by tunnel.ca")]
    done.append(await _accepted(reader, seconds))
    chosen = tls.selected_alpn_protocol()
    if chosen != ALPN:
        raise StepFailed("alpn", f"the relay chose {chosen!r}, not {ALPN}")
    done.append(Step("alpn", True, ALPN))
    return done


async def _accepted(reader: asyncio.StreamReader, seconds: float) -> Step:
    """TLS 1.3 tells a refused client certificate only after the handshake: the relay, the
    HTTP/2 client on this connection, speaks first once it accepts the certificate."""
    try:
        async with asyncio.timeout(seconds):
            first = await reader.read(1)
    except TimeoutError:
        return Step("certificate", True, "not refused (the relay sent nothing yet)")
    except (ssl.SSLError, ConnectionError) as exc:
        detail = f"the relay refused the agent's certificate: {exc}"
        raise StepFailed("certificate", detail) from None
    if not first:
        detail = (
            "the relay closed the connection: it refused the agent's certificate "
            "(revoked, expired or from another CA)"
        )
        raise StepFailed("certificate", detail)
    return Step("certificate", True, "the relay accepted the agent's certificate")


async def _resolve(host: str, port: int, what: str) -> Step:
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StepFailed("dns", f"cannot resolve {host}: {exc.strerror or exc}") from None
    addresses = sorted({str(info[4][0]) for info in found})
    return Step("dns", True, f"{what} is {', '.join(addresses)}")


async def _timed(name: str, seconds: float, work: Awaitable[T]) -> T:
    """`work`'s result; its failure or its timeout as the step `name` failing."""
    try:
        async with asyncio.timeout(seconds):
            return await work
    except TimeoutError:
        raise StepFailed(name, f"no answer within {seconds:g} s") from None
    except ssl.SSLCertVerificationError as exc:
        detail = f"the relay's certificate is not trusted by tunnel.ca: {exc.verify_message}"
        raise StepFailed(name, detail) from None
    except OSError as exc:  # ssl.SSLError and ProxyRefused included
        raise StepFailed(name, scrub(exc.strerror or str(exc) or type(exc).__name__)) from None
