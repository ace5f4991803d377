"""Dialing the relay, directly or through an outbound HTTP proxy (HTTP CONNECT, Basic auth).

The proxy comes from `tunnel.proxy` or else `HTTPS_PROXY`, unless `NO_PROXY` exempts the
relay. TLS to the relay runs inside the CONNECT tunnel, so the proxy sees only the relay's
name and port. A refusal is raised with the proxy's own status line.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from urllib.parse import unquote, urlsplit

MAX_HEADER = 16 * 1024


class ProxyRefused(OSError):
    """The proxy would not open the tunnel; the message carries its status line."""


def proxy_for(host: str, explicit: str | None) -> str | None:
    if explicit:
        return explicit
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if not proxy:
        return None
    exempt = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    for entry in filter(None, (e.strip().lower() for e in exempt.split(","))):
        if (
            entry == "*"
            or host.lower() == entry.lstrip(".")
            or host.lower().endswith("." + entry.lstrip("."))
        ):
            return None
    return proxy


async def open_via_proxy(
    host: str, port: int, context: ssl.SSLContext, proxy: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    chosen = proxy_for(host, proxy)
    if chosen is None:
        return await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    target = urlsplit(chosen)
    reader, writer = await asyncio.open_connection(target.hostname, target.port or 3128)
    try:
        await request_tunnel(reader, writer, f"{host}:{port}", target.username, target.password)
        await writer.start_tls(context, server_hostname=host)
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def request_tunnel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    authority: str,
    user: str | None,
    password: str | None,
) -> None:
    """Ask the proxy on `reader`/`writer` for a tunnel to `authority`; ProxyRefused if not."""
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if user is not None:
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEADER:
        raise ProxyRefused("the proxy's answer to CONNECT is too long")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise ProxyRefused(f"the proxy refused CONNECT {authority}: {status_line}")
