"""One translation of a received request into an `ApiRequest`, for both fronts: the local
listener (agent.http) and the tunnel (agent.tunnel.connection).

A front makes an `Intake` from the request's method, target (path and query, as sent), header
pairs and peer; feeds it the body as it arrives; and takes the `ApiRequest` with `finish`,
with the refusal (an ApiError) the pipeline must answer instead of serving it. No I/O here.

Rules, the same whichever front:
- headers by common.headers: lower-case names, other repeats joined, a repeated singleton a
  400 (and left out, so no value of it is used); the body is then not wanted;
- the body within `max_body` bytes: past it the rest is dropped, the request refused with
  one 413 (`too_large`);
- the request id by common.requestid: the caller's if valid, else a fresh one (a 400 if it
  broke the rule);
- the query split from the path at the first `?` and parsed one way (blank values kept);
  the path stays percent-encoded;
- which refusal wins: a repeated header, then the front's own (a body too large or stalled),
  then a broken request id;
- a POST whose body is NDJSON or CSV (`streams_body`) is a bulk load: its body is not taken
  in here but handed on as a stream, without the `max_body` limit (`max_bulk_rows` bounds
  it instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from bridgehead.agent.api.message import ApiRequest
from bridgehead.agent.api.records import record_format
from bridgehead.agent.errors import PayloadTooLarge
from bridgehead.common.errors import ApiError
from bridgehead.common.headers import request_headers
from bridgehead.common.requestid import HEADER, request_id


def too_large(max_body: int) -> PayloadTooLarge:
    """The one 413 both fronts answer with."""
    return PayloadTooLarge(f"the request body is larger than {max_body} bytes")


@dataclass(frozen=True)
class Peer:
    via: str
    """Which front received the request: `local` or `relay`."""
    remote: str = ""
    """The peer's address on the local listener; empty through the tunnel."""


class Intake:
    """One request as a front takes it in."""

    def __init__(
        self,
        method: str,
        target: str,
        fields: Iterable[tuple[str, str]],
        peer: Peer,
        max_body: int,
    ) -> None:
        self.method, self.target, self.peer, self.max_body = method, target, peer, max_body
        self.headers, repeated = request_headers(fields)
        self._refusal: ApiError | None = repeated
        self._pieces: list[bytes] = []
        self._size = 0

    @property
    def streams_body(self) -> bool:
        """Whether the body goes to the pipeline as a stream (a bulk load), not whole."""
        bulk = record_format(self.headers.get("content-type", "")) is not None
        return self.method == "POST" and bulk and self._refusal is None

    @property
    def wants_body(self) -> bool:
        """Whether more body is of use: not once the request is refused."""
        return self._refusal is None

    def declare(self, length: int | None) -> None:
        """The body's announced length: one past the limit refuses the request at once."""
        if length is not None and length > self.max_body:
            self.refuse(too_large(self.max_body))

    def add(self, piece: bytes) -> None:
        """One piece of the body; past the limit every piece is dropped."""
        if not self.wants_body:
            return
        self._size += len(piece)
        if self._size > self.max_body:
            self._pieces.clear()
            self.refuse(too_large(self.max_body))
        else:
            self._pieces.append(piece)

    def refuse(self, error: ApiError) -> None:
        """The front's own refusal (body too large, body stalled); the first one stands."""
        if self._refusal is None:
            self._refusal = error
            self._pieces.clear()

    def finish(
        self, stream: AsyncIterator[bytes] | None = None
    ) -> tuple[ApiRequest, ApiError | None]:
        """The request for the pipeline, and the refusal to answer instead, if any; `stream`:
        the body of a bulk load, as the front receives it."""
        given_id, bad_id = request_id(self.headers.get(HEADER))
        path, _, query = self.target.partition("?")
        request = ApiRequest(
            method=self.method,
            path=path,
            query=tuple(parse_qsl(query, keep_blank_values=True)),
            headers=self.headers,
            body=b"".join(self._pieces),
            request_id=given_id,
            via=self.peer.via,
            remote=self.peer.remote,
            stream=stream,
        )
        return request, self._refusal or bad_id
