"""The agent's end of one tunnel connection, without I/O: an HTTP/2 server on a socket the
agent dialed (the relay is the HTTP/2 client).

Bytes go in through `receive`, events come out; what to send is taken with `outgoing`.
Flow control is HTTP/2's own: request bodies are acknowledged as they arrive (the agent
bounds what it keeps itself); `sendable` says how much of a response body the relay's
window allows now, and a `WindowOpened` event says which streams may send more. A request
whose header block breaks HTTP/2's rules is reset on its own (`RequestRejected`); the
connection lives on. A drain (`stop_new_streams`) is `DrainAcknowledged` once the relay has
acknowledged it: from then on it opens no new stream, so GOAWAY may follow safely.

The relay may have `max_streams` requests open at once (SETTINGS_MAX_CONCURRENT_STREAMS, in
the first SETTINGS frame, so no stream is ever counted against another limit): the agent's
own choice, never h2's implicit 100. A request waiting here for a database connection holds
only its stream, so the tunnel must admit more streams than the pool has connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import h2.errors
import h2.events
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
    "DrainAcknowledged",
    "Draining",
    "Event",
    "PingAcknowledged",
    "RequestComplete",
    "RequestReceived",
    "RequestRejected",
    "ServerSession",
    "StreamCancelled",
    "WindowOpened",
]


@dataclass(frozen=True)
class RequestReceived:
    stream_id: int
    headers: dict[str, str]
    """By name (a repeated name keeps its last value): for the pseudo-headers."""
    fields: tuple[tuple[str, str], ...] = ()
    """Every header as received, repeats included, in order."""


@dataclass(frozen=True)
class RequestRejected:
    """The request's header block broke HTTP/2's rules; its stream has been reset."""

    stream_id: int
    reason: str


@dataclass(frozen=True)
class RequestComplete:
    stream_id: int


@dataclass(frozen=True)
class StreamCancelled:
    stream_id: int


@dataclass(frozen=True)
class DrainAcknowledged:
    """The relay acknowledged the drain's MAX_CONCURRENT_STREAMS of 0: no new streams come."""


Event = (
    RequestReceived
    | RequestRejected
    | BodyReceived
    | RequestComplete
    | StreamCancelled
    | WindowOpened
    | PingAcknowledged
    | Draining
    | DrainAcknowledged
)


MAX_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
DEFAULT_MAX_STREAMS = 1000
"""Requests one tunnel connection carries at once unless the config says otherwise."""


class ServerSession(Session):
    def __init__(self, max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        super().__init__(client_side=False)
        wire.limit_streams(self._h2, max_streams)
        self._deferred: set[int] = set()

    def defer_credit(self, stream_id: int) -> None:
        """Give a stream's flow-control credit back only as its body is used (`consumed`),
        so a body read slowly holds its sender back instead of piling up here; the
        connection's credit is given back at once, so the other streams go on."""
        self._deferred.add(stream_id)

    def consumed(self, stream_id: int, size: int) -> None:
        """`size` bytes of a deferred stream's body were used: the sender may send them again."""
        if size and stream_id in self._deferred:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._h2.increment_flow_control_window(size, stream_id=stream_id)

    def receive(self, data: bytes) -> list[Event]:
        """Events for the bytes read; raises h2's ProtocolError on a broken peer."""
        return [event for raw in self._h2.receive_data(data) for event in self._translate(raw)]

    def _translate(self, raw: h2.events.Event) -> Iterator[Event]:
        match raw:
            case h2.events.RequestReceived(stream_id=sid, headers=headers):
                yield self._request(sid, wire.decode(headers))
            case h2.events.DataReceived(stream_id=sid, data=data, flow_controlled_length=size):
                if sid in self._deferred:
                    if size:
                        self._h2.increment_flow_control_window(size)  # the connection's only
                else:
                    self._h2.acknowledge_received_data(size or 0, sid)
                yield BodyReceived(sid, data or b"")
            case h2.events.StreamEnded(stream_id=sid):
                self._deferred.discard(sid)
                yield RequestComplete(sid)
            case h2.events.StreamReset(stream_id=sid):
                self._deferred.discard(sid)
                yield StreamCancelled(sid)
            case h2.events.ConnectionTerminated():
                yield Draining()
            case h2.events.SettingsAcknowledged(changed_settings=changed) if (
                MAX_STREAMS in changed and changed[MAX_STREAMS].new_value == 0
            ):
                yield DrainAcknowledged()
            case _:
                yield from self._shared(raw)

    def _request(self, sid: int, fields: list[tuple[str, str]]) -> Event:
        problem = wire.header_problem(fields, wire.REQUEST_PSEUDO, wire.REQUEST_NEEDS)
        if problem is not None:
            self._h2.reset_stream(sid, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return RequestRejected(sid, problem)
        return RequestReceived(sid, dict(fields), tuple(fields))

    def respond(self, stream_id: int, status: int, headers: dict[str, str], end: bool) -> None:
        fields = [(":status", str(status)), *((k.lower(), v) for k, v in headers.items())]
        self._h2.send_headers(stream_id, wire.encode(fields), end_stream=end)

    def reset(self, stream_id: int) -> None:
        self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def refuse(self, stream_id: int) -> None:
        """Decline a stream unprocessed (REFUSED_STREAM): the relay may retry it elsewhere."""
        self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)

    def stop_new_streams(self) -> None:
        """Announce a drain without ending the connection: no new streams (the relay stops
        picking it), while the ones in flight keep sending. GOAWAY comes with `close`."""
        self._h2.update_settings({MAX_STREAMS: 0})

    def close(self) -> None:
        """GOAWAY: only once no stream is left, as h2 sends no more DATA after it."""
        self._h2.close_connection()
