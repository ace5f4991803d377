# Raw HTTP/1.1 over a plain socket on 127.0.0.1, for requests no client library would send
# (repeated headers, broken framing) and for clients that stall on purpose.
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        assert self.headers.get("content-type") == "application/problem+json", self
        parsed: dict[str, object] = orjson.loads(self.body)
        return parsed


def address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def exchange(base_url: str, data: bytes, wait: float = 5.0) -> RawResponse | None:
    """Send `data`, read until the server closes; the first response, or None if none came."""
    host, port = address(base_url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), wait)
    except ConnectionResetError:
        raw = b""
    finally:
        writer.close()
    return parse(raw) if raw else None


async def answer(base_url: str, data: bytes) -> RawResponse:
    """The response to `data`, which the test expects there to be."""
    response = await exchange(base_url, data)
    assert response is not None, "the server closed the connection without an answer"
    return response


def parse(raw: bytes) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    return RawResponse(status, headers, body[: int(length)] if length else body)


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    """An HTTP/1.1 request with `Connection: close` and the given header lines, verbatim."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
