"""The agent's side of one tunnel connection, without I/O: an HTTP/2 server on a socket the
agent dialed (the relay is the HTTP/2 client).

Bytes go in through `receive`, events come out; what to send is taken with `outgoing`.
Flow control is HTTP/2's own: `sendable` says how much of a response body the relay's
window allows now, and a `WindowOpened` event says when more may go. A request whose header
block breaks HTTP/2's rules is reset on its own (`RequestRejected`); the connection lives on.
"""

from __future__ import annotations

from dataclasses import dataclass

import h2.errors
import h2.events
import h2.settings

from bridgehead.common.tunnel import wire

STREAM_WINDOW = 1 << 20
"""How much request body the relay may send ahead on one stream before we acknowledge it."""


@dataclass(frozen=True)
class RequestReceived:
    stream_id: int
    headers: dict[str, str]


@dataclass(frozen=True)
class RequestRejected:
    """The request's header block broke HTTP/2's rules; its stream has been reset."""

    stream_id: int
    reason: str


@dataclass(frozen=True)
class BodyReceived:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class RequestComplete:
    stream_id: int


@dataclass(frozen=True)
class StreamCancelled:
    stream_id: int


@dataclass(frozen=True)
class WindowOpened:
    stream_id: int
    """0 when the connection's window opened (every stream may try again)."""


@dataclass(frozen=True)
class PingAcknowledged:
    payload: bytes


@dataclass(frozen=True)
class Draining:
    """The relay sent GOAWAY: finish what is in flight, take nothing new."""


Event = (
    RequestReceived
    | RequestRejected
    | BodyReceived
    | RequestComplete
    | StreamCancelled
    | WindowOpened
    | PingAcknowledged
    | Draining
)


class TunnelSession:
    def __init__(self) -> None:
        self._h2 = wire.connection(client_side=False)

    def start(self) -> None:
        wire.open_connection(self._h2, STREAM_WINDOW)

    def receive(self, data: bytes) -> list[Event]:
        """Events for the bytes read; raises h2's ProtocolError on a broken peer."""
        return [e for raw in self._h2.receive_data(data) if (e := self._translate(raw))]

    def _translate(self, raw: h2.events.Event) -> Event | None:  # noqa: PLR0911 - one per event
        match raw:
            case h2.events.RequestReceived(stream_id=sid, headers=headers):
                fields = wire.decode(headers)
                problem = wire.header_problem(fields, wire.REQUEST_PSEUDO, wire.REQUEST_NEEDS)
                if problem is not None:
                    self._h2.reset_stream(sid, h2.errors.ErrorCodes.PROTOCOL_ERROR)
                    return RequestRejected(sid, problem)
                return RequestReceived(sid, dict(fields))
            case h2.events.DataReceived(stream_id=sid, data=data, flow_controlled_length=size):
                self._h2.acknowledge_received_data(size or 0, sid)
                return BodyReceived(sid, data or b"")
            case h2.events.StreamEnded(stream_id=sid):
                return RequestComplete(sid)
            case h2.events.StreamReset(stream_id=sid):
                return StreamCancelled(sid)
            case h2.events.WindowUpdated(stream_id=sid):
                return WindowOpened(sid or 0)
            case h2.events.PingAckReceived(ping_data=payload):
                return PingAcknowledged(payload or b"")
            case h2.events.ConnectionTerminated():
                return Draining()
        return None

    def outgoing(self) -> bytes:
        return self._h2.data_to_send()

    def respond(self, stream_id: int, status: int, headers: dict[str, str], end: bool) -> None:
        fields = [(":status", str(status)), *((k.lower(), v) for k, v in headers.items())]
        self._h2.send_headers(stream_id, wire.encode(fields), end_stream=end)

    def sendable(self, stream_id: int) -> int:
        """How many body bytes may go on this stream now (flow-control window, frame size)."""
        window = self._h2.local_flow_control_window(stream_id)
        return min(window, self._h2.max_outbound_frame_size)

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self._h2.send_data(stream_id, data, end_stream=end)

    def end(self, stream_id: int) -> None:
        self._h2.end_stream(stream_id)

    def reset(self, stream_id: int) -> None:
        self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def refuse(self, stream_id: int) -> None:
        """Decline a stream unprocessed (REFUSED_STREAM): the relay may retry it elsewhere."""
        self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)

    def ping(self, payload: bytes) -> None:
        self._h2.ping(payload)

    def stop_new_streams(self) -> None:
        """Announce a drain without ending the connection: no new streams (the relay stops
        picking it), while the ones in flight keep sending. GOAWAY comes with `close`."""
        self._h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})

    def close(self) -> None:
        """GOAWAY: only once no stream is left, as h2 sends no more DATA after it."""
        self._h2.close_connection()
