# Item 2 of the security review (the relay's part): malformed requests carrying a bearer
# token, sent to the caller port, leave the token nowhere in the relay's log (aiohttp's
# own loggers included); each is logged as one line without its bytes.
from __future__ import annotations

import asyncio
import logging
import sys
import traceback

import pytest
from relaysec_kit import TOKEN, closed_within, start_relay, tls_socket
from tunnelkit import Pki

from bridgehead.common.redact import scrub
from bridgehead.relay.redact import Redactor

AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
MALFORMED = [
    # obs-fold: a header continued on the next line
    b"GET /agents/plant-7/v1/t HTTP/1.1\r\nHost: r\r\n" + AUTH + b"X-Fold: a\r\n b\r\n\r\n",
    # a bad request line
    b"GET /agents/plant-7/v1/t HTTP/9.Z junk\r\n" + AUTH + b"\r\n",
    b"G\x00T / HTTP/1.1\r\n" + AUTH + b"\r\n",
    # invalid chunked encoding
    b"POST /agents/plant-7/v1/t HTTP/1.1\r\nHost: r\r\n" + AUTH
    + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n0\r\n\r\n",
    # both Content-Length and Transfer-Encoding
    b"POST /agents/plant-7/v1/t HTTP/1.1\r\nHost: r\r\n" + AUTH
    + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # an oversized header, the token inside it
    b"GET /agents/plant-7/v1/t HTTP/1.1\r\nHost: r\r\n" + AUTH
    + b"X-Big: " + TOKEN.encode() * 2000 + b"\r\n\r\n",
    # a header with a control character
    b"GET /agents/plant-7/v1/t HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer " + TOKEN.encode()
    + b"\x01\r\n\r\n",
]  # fmt: skip


async def test_malformed_requests_leave_no_token_in_the_relay_log(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed request gets answered or closed, and the token appears in no log line
    (message or exception text); each is logged as a malformed request without its bytes."""
    caplog.set_level(logging.DEBUG)
    relay = await start_relay(pki)
    try:
        context = await asyncio.to_thread(pki.caller_context)
        for request in MALFORMED:
            reader, writer = await tls_socket(relay, context)
            writer.write(request)
            assert await closed_within(reader, 5.0)
            writer.close()
    finally:
        await relay.stop()
    text = caplog.text + "".join(
        "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
    )
    assert TOKEN not in text
    assert TOKEN[:12] not in text
    assert sum("malformed request from" in r.getMessage() for r in caplog.records) >= 5


def test_every_relay_log_line_has_credentials_cut_out() -> None:
    """A line (or its exception) quoting an Authorization header, a bearer token or a cookie
    reaches handlers with the values replaced."""
    try:
        raise ValueError(f"upstream said: {{'Authorization': 'Bearer {TOKEN}'}}")
    except ValueError:
        record = logging.getLogger("bridgehead.relay").makeRecord(
            "bridgehead.relay", logging.ERROR, __file__, 1,
            "headers %s", (f"Cookie: session={TOKEN}",), sys.exc_info(),
        )  # fmt: skip
    assert Redactor().filter(record)
    shown = record.getMessage()
    assert TOKEN not in shown
    assert "[redacted]" in shown
    assert record.exc_info is None
    assert TOKEN not in scrub(f"x-api-key={TOKEN}")
