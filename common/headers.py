"""The header rule every front applies to a request before the pipeline reads it.

Each header on SINGLETONS may come only once: the relay, a front and the pipeline must never
read different values of one request (the first vs the last `Authorization`). Both of the
agent's fronts take requests in through `request_headers` (agent.api.intake), which makes a
repeat a 400 problem; the tunnel's HTTP/2 layer resets such a stream before that
(common.tunnel.wire checks the same list) and the relay refuses it with a 400 first. Other
repeated headers are joined with ", " (RFC 9110 §5.3). Names are lower-cased. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridgehead.common.errors import BadRequest

SINGLETONS = frozenset(
    {"authorization", "content-length", "content-type", "if-match", "idempotency-key",
     "x-request-id"}
)  # fmt: skip


def request_headers(fields: Iterable[tuple[str, str]]) -> tuple[dict[str, str], BadRequest | None]:
    """The request's headers by lower-case name, and the refusal when a singleton repeats
    (the repeated header is then left out, so no value of it is ever used)."""
    headers: dict[str, str] = {}
    repeated: list[str] = []
    for name, value in fields:
        key = name.lower()
        if key not in headers:
            headers[key] = value
        elif key in SINGLETONS:
            repeated.append(key)
        else:
            headers[key] = f"{headers[key]}, {value}"
    if not repeated:
        return headers, None
    for key in repeated:
        headers.pop(key, None)
    names = ", ".join(sorted(set(repeated)))
    return headers, BadRequest(
        f"the request carries {names} more than once; send each of these headers at most once"
    )
