"""How both ends of a tunnel connection speak HTTP/2: one h2 configuration and the header
rules. No I/O here.

Rules:
- h2's own header validation (the largest CPU cost h2 has) is off; `header_problem` checks a
  received header block in one pass instead, and a bad block fails only its own stream (h2's
  check ends the connection, and with it every other request in flight on it). h2 still
  enforces content-length itself, at the connection's level: a peer that lies about a body's
  length loses its own connection.
- Header blocks are HPACK-coded without Huffman: a few more bytes on a fast link, far less
  CPU. Only headers on the INDEXABLE list enter the dynamic table; every other value (paths,
  request ids, credentials, any custom header that may carry a secret) is never indexed, so no
  secret shares a compression context with other callers' headers.
- A block may name each pseudo-header, and each header on SINGLETONS (common.headers, the
  rule the local listener applies too), only once: the relay and the agent must never read
  different values from one request (the first vs the last).
- Header bytes are UTF-8 with surrogate escapes both ways, so no byte sequence a caller sends
  can raise while it is coded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import h2.config
import h2.connection
import h2.settings
import hpack
from hpack import HeaderTuple, NeverIndexedHeaderTuple

from bridgehead.common import headers

SINGLETONS = headers.SINGLETONS
"""The request headers that may come once (common.headers: one list for every front)."""
MAX_FRAME = 1 << 16
"""The largest DATA frame either end accepts: a quarter of the 16 KB default's per-frame CPU,
and at 100 Mbit/s a frame holds the connection for only about 5 ms."""
CONNECTION_WINDOW = 16 << 20
"""What may come ahead on all of a connection's streams together, at either end."""
INDEXABLE = frozenset(
    {b":method", b":scheme", b":authority", b":status", b"accept", b"accept-encoding",
     b"accept-language", b"cache-control", b"content-encoding", b"content-type", b"prefer",
     b"preference-applied", b"te", b"user-agent", b"vary"}
)  # fmt: skip
CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)
REQUEST_PSEUDO = frozenset({":method", ":path", ":scheme", ":authority"})
REQUEST_NEEDS = frozenset({":method", ":path", ":scheme"})
RESPONSE_PSEUDO = RESPONSE_NEEDS = frozenset({":status"})
_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_BAD_VALUE = re.compile(r"[\x00\r\n]|^[ \t]|[ \t]$")


class PlainEncoder(hpack.Encoder):
    """An HPACK encoder that never Huffman-codes (decoders accept both forms)."""

    def encode(self, headers: Iterable[HeaderTuple], huffman: bool = True) -> bytes:  # type: ignore[override]
        return super().encode(headers, huffman=False)


def connection(client_side: bool) -> h2.connection.H2Connection:
    """An h2 connection as both ends use it: headers come and go as bytes (see `decode` and
    `encode`), checked by `header_problem`, and HPACK-coded without Huffman."""
    config = h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config)
    conn.encoder = PlainEncoder()
    return conn


def limit_streams(conn: h2.connection.H2Connection, max_streams: int) -> None:
    """Let the peer open `max_streams` streams at once. Set before the preface, so the first
    SETTINGS frame says it and h2 enforces it from the start (as hypercorn does)."""
    conn.local_settings = h2.settings.Settings(
        client=conn.config.client_side,
        initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: conn.DEFAULT_MAX_HEADER_LIST_SIZE,
        },
    )


def open_connection(conn: h2.connection.H2Connection, stream_window: int) -> None:
    """The preface and settings: `stream_window` bytes may come ahead on each stream, and
    CONNECTION_WINDOW on all together (wide, so each stream is bounded on its own)."""
    conn.initiate_connection()
    conn.update_settings(
        {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME,
        }
    )
    conn.increment_flow_control_window(CONNECTION_WINDOW)


def encode(fields: Iterable[tuple[str, str]]) -> list[HeaderTuple]:
    """A header block to send: bytes, with unique and secret values marked never-indexed."""
    block: list[HeaderTuple] = []
    for name, value in fields:
        raw = name.encode("ascii", "surrogateescape")
        kind = HeaderTuple if raw in INDEXABLE else NeverIndexedHeaderTuple
        block.append(kind(raw, value.encode("utf-8", "surrogateescape")))
    return block


def decode(block: Iterable[tuple[bytes, bytes]] | None) -> list[tuple[str, str]]:
    return [
        (bytes(n).decode("utf-8", "surrogateescape"), bytes(v).decode("utf-8", "surrogateescape"))
        for n, v in block or ()
    ]


def header_problem(
    fields: Sequence[tuple[str, str]], pseudo: frozenset[str], needed: frozenset[str]
) -> str | None:
    """Why a received header block breaks HTTP/2's rules (RFC 9113 §8.2-8.3), or None:
    `pseudo` are the pseudo-headers it may have, `needed` those it must."""
    regular, seen = False, set[str]()
    for name, value in fields:
        problem = _field_problem(name, value, pseudo, regular, seen)
        if problem is not None:
            return problem
        regular = regular or not name.startswith(":")
        seen.add(name)
    if not needed <= seen:
        return f"header block lacks {', '.join(sorted(needed - seen))}"
    return None


def _field_problem(
    name: str, value: str, pseudo: frozenset[str], regular: bool, seen: set[str]
) -> str | None:
    if name in seen and (name.startswith(":") or name in SINGLETONS):
        return f"header {name!r} appears more than once"
    if name.startswith(":"):
        if regular or name not in pseudo:
            return f"pseudo-header {name!r} is unknown or after a regular header"
    elif not _NAME.fullmatch(name):
        return f"header name {name!r} is not a lower-case token"
    elif name in CONNECTION_SPECIFIC or (name == "te" and value != "trailers"):
        return f"connection-specific header {name!r}"
    if _BAD_VALUE.search(value):
        return f"header {name!r} has a control character or surrounding white space"
    return None
