"""What the two ends' sans-IO sessions share: one h2 connection each, the stream window, how
much body may go now, and the events both ends see alike. No I/O here.

Rules:
- Each end lets the other send `STREAM_WINDOW` bytes ahead on a stream before it must
  acknowledge them; the pumps read the socket `READ_SIZE` bytes at a time.
- `sendable` is the one rule for how much body may go on a stream now: the peer's
  flow-control window for it, and never more than one frame.
- `WindowOpened` names the streams that may try to send again: a WINDOW_UPDATE for one
  stream names that stream; one for the connection (stream 0), or a larger initial window
  in the peer's SETTINGS, names every stream still open. The pumps wake exactly those.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import h2.connection
import h2.events
import h2.settings

from bridgehead.common.tunnel import wire

STREAM_WINDOW = 1 << 20
"""How much body the peer may send ahead on one stream before it is acknowledged (request
bodies at the agent, response bodies at the relay)."""
READ_SIZE = 1 << 16
"""How many bytes a pump reads from the socket at a time."""


@dataclass(frozen=True)
class BodyReceived:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class WindowOpened:
    """The peer's flow-control window grew: these streams may send more body now."""

    stream_ids: tuple[int, ...]


@dataclass(frozen=True)
class PingAcknowledged:
    payload: bytes


@dataclass(frozen=True)
class Draining:
    """The peer is going away (GOAWAY) or takes no new streams (MAX_CONCURRENT_STREAMS 0):
    finish what is in flight, start nothing new."""

    last_processed: int | None = None
    """From a GOAWAY the peer sent as a server: streams above it were never processed (safe
    to send elsewhere). None when the peer did not say."""


class Session:
    """One end of a tunnel connection's h2 state; the server and client sessions add their
    own side's events and commands."""

    def __init__(self, client_side: bool) -> None:
        self._h2 = wire.connection(client_side=client_side)

    def start(self) -> None:
        """The connection preface and our settings (queued for `outgoing`)."""
        wire.open_connection(self._h2, STREAM_WINDOW)

    def outgoing(self) -> bytes:
        """The bytes to send now (taken: a second call returns only what came since)."""
        return self._h2.data_to_send()

    def sendable(self, stream_id: int) -> int:
        """How many body bytes may go on this stream now (flow-control window, frame size)."""
        window = self._h2.local_flow_control_window(stream_id)
        return min(window, self._h2.max_outbound_frame_size)

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Queue body bytes, at most `sendable(stream_id)` of them."""
        self._h2.send_data(stream_id, data, end_stream=end)

    def end(self, stream_id: int) -> None:
        """Our side of the stream is complete (an empty DATA frame with END_STREAM)."""
        self._h2.end_stream(stream_id)

    def ping(self, payload: bytes) -> None:
        self._h2.ping(payload)

    def _shared(self, raw: h2.events.Event) -> Iterator[WindowOpened | PingAcknowledged]:
        """The events both ends make of `raw`, if it is one of theirs."""
        match raw:
            case h2.events.WindowUpdated(stream_id=sid) if sid:
                yield WindowOpened((sid,))
            case h2.events.WindowUpdated():
                yield from self._every_stream_opened()
            case h2.events.RemoteSettingsChanged(changed_settings=changed):
                grown = changed.get(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE)
                if grown is not None and (grown.new_value or 0) > (grown.original_value or 0):
                    yield from self._every_stream_opened()
            case h2.events.PingAckReceived(ping_data=payload):
                yield PingAcknowledged(payload or b"")

    def _every_stream_opened(self) -> Iterator[WindowOpened]:
        open_ids = tuple(sid for sid, stream in self._h2.streams.items() if not stream.closed)
        if open_ids:
            yield WindowOpened(open_ids)
