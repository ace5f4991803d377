"""The relay's end of one tunnel connection, without I/O: an HTTP/2 client on a socket the
agent dialed (the agent is the HTTP/2 server).

Bytes go in through `receive`, events come out; what to send is taken with `outgoing`.

Rules:
- `open_stream` sends a request's head and names its stream; its body goes with `send_body`,
  at most `sendable` bytes at a time, and `end` completes it.
- Response data is not acknowledged here: the pump calls `acknowledge` once its caller has
  taken the bytes, so the agent never runs more than a window ahead of a slow caller. Only
  padding, which no caller sees, is acknowledged at once.
- A response head that breaks HTTP/2's rules, or whose status is not final (200-599), resets
  its own stream with PROTOCOL_ERROR (`ResponseRejected`); the connection lives on.
- A reset from the agent says why (`ResetReason`): refused unprocessed, the request found
  malformed, or the stream abandoned.
- GOAWAY and a MAX_CONCURRENT_STREAMS of 0 are both `Draining`; only GOAWAY names the last
  stream the agent processed.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from bridgehead.common.tunnel import wire
from bridgehead.common.tunnel.session import (
    BodyReceived,
    Draining,
    PingAcknowledged,
    Session,
    WindowOpened,
)

__all__ = [
    "BodyReceived",
    "ClientSession",
    "Draining",
    "Event",
    "PingAcknowledged",
    "ResetReason",
    "ResponseReceived",
    "ResponseRejected",
    "StreamEnded",
    "StreamReset",
    "WindowOpened",
]


class ResetReason(enum.Enum):
    REFUSED = "refused"
    """REFUSED_STREAM: the agent declined the stream unprocessed (safe to send elsewhere)."""
    MALFORMED = "malformed"
    """PROTOCOL_ERROR: the agent found the request malformed (sending it again repeats it)."""
    ABANDONED = "abandoned"
    """Any other code (CANCEL, INTERNAL_ERROR, ...): the agent stopped the stream."""


@dataclass(frozen=True)
class ResponseReceived:
    stream_id: int
    status: int
    headers: list[tuple[str, str]]
    """The regular headers, in the order sent (no pseudo-headers)."""


@dataclass(frozen=True)
class ResponseRejected:
    """The response's head broke HTTP/2's rules; its stream has been reset."""

    stream_id: int
    reason: str


@dataclass(frozen=True)
class StreamEnded:
    """The response is complete."""

    stream_id: int


@dataclass(frozen=True)
class StreamReset:
    """The agent reset the stream (RST_STREAM with `code`)."""

    stream_id: int
    reason: ResetReason
    code: int


Event = (
    ResponseReceived
    | ResponseRejected
    | BodyReceived
    | StreamEnded
    | StreamReset
    | WindowOpened
    | PingAcknowledged
    | Draining
)


class ClientSession(Session):
    def __init__(self, authority: str) -> None:
        super().__init__(client_side=True)
        self.authority = authority
        """The `:authority` of every request: the agent's id."""

    @property
    def has_room(self) -> bool:
        """Whether the agent's MAX_CONCURRENT_STREAMS allows one more stream now."""
        limit = self._h2.remote_settings.max_concurrent_streams
        return self._h2.open_outbound_streams < limit

    def open_stream(
        self, method: str, path: str, headers: Iterable[tuple[str, str]], end: bool
    ) -> int:
        """Send a request's head on a new stream (`end`: it has no body); its stream id."""
        sid = self._h2.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "https"),
                  (":authority", self.authority), *headers]  # fmt: skip
        self._h2.send_headers(sid, wire.encode(fields), end_stream=end)
        return sid

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Hand `size` received bytes back to the agent's windows (they were taken)."""
        if size > 0:
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                self._h2.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int) -> None:
        """Give up on a stream (RST_STREAM CANCEL: the agent cancels its query). Nothing is
        sent for a stream already over, or once the agent has sent GOAWAY (h2 sends no more)."""
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)

    def receive(self, data: bytes) -> list[Event]:
        """Events for the bytes read; raises h2's ProtocolError on a broken peer."""
        return [event for raw in self._h2.receive_data(data) for event in self._translate(raw)]

    def _translate(self, raw: h2.events.Event) -> Iterator[Event]:
        match raw:
            case h2.events.ResponseReceived(stream_id=sid, headers=headers):
                yield self._response(sid, wire.decode(headers))
            case h2.events.DataReceived(stream_id=sid, data=data, flow_controlled_length=size):
                yield from self._body(sid, data or b"", size or 0)
            case h2.events.StreamEnded(stream_id=sid):
                yield StreamEnded(sid)
            case h2.events.StreamReset(stream_id=sid, error_code=code):
                yield StreamReset(sid, _reason(code), int(code or 0))
            case h2.events.ConnectionTerminated(last_stream_id=last):
                yield Draining(last if last is not None else 0)
            case h2.events.RemoteSettingsChanged(changed_settings=changed):
                limit = changed.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                if limit is not None and limit.new_value == 0:
                    yield Draining()
                yield from self._shared(raw)
            case _:
                yield from self._shared(raw)

    def _response(self, sid: int, fields: list[tuple[str, str]]) -> Event:
        problem = wire.header_problem(fields, wire.RESPONSE_PSEUDO, wire.RESPONSE_NEEDS)
        status = dict(fields).get(":status", "")
        if problem is None and not (status.isdigit() and 200 <= int(status) <= 599):
            problem = f"status {status!r} is not a final status (200-599)"
        if problem is not None:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(sid, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return ResponseRejected(sid, problem)
        return ResponseReceived(sid, int(status), [(k, v) for k, v in fields if k[0] != ":"])

    def _body(self, sid: int, data: bytes, size: int) -> Iterator[BodyReceived]:
        """The body bytes, left for the pump to acknowledge; padding acknowledged now."""
        self.acknowledge(sid, size - len(data))
        if data:
            yield BodyReceived(sid, data)


def _reason(code: int | None) -> ResetReason:
    if code == h2.errors.ErrorCodes.REFUSED_STREAM:
        return ResetReason.REFUSED
    if code == h2.errors.ErrorCodes.PROTOCOL_ERROR:
        return ResetReason.MALFORMED
    return ResetReason.ABANDONED
