"""One agent's tunnel connection, seen from the relay: an HTTP/2 client on a socket the agent
opened, that sends cloud callers' requests down to the agent.

Rules:
- Each caller request is one HTTP/2 stream. Request bodies go as fast as the agent's window
  allows; response data is acknowledged only once the caller has taken it, so the agent
  never sends more than a window ahead of a slow caller, and other streams keep flowing.
- A caller that goes away resets its stream; the agent then cancels the query.
- PINGs measure the round trip; a connection silent for `dead_after` is closed.
- A response whose header block breaks HTTP/2's rules fails its own stream (BadExchange, a
  502 never retried), not the link; so does the agent's verdict that a request was malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from bridgehead.certs.pki import Identity
from bridgehead.common.tunnel import wire
from bridgehead.common.tunnel.liveness import Liveness, keep_alive, send_windowed
from bridgehead.common.tunnel.outbox import Outbox

log = logging.getLogger("bridgehead.relay")
STREAM_WINDOW = 1 << 20
"""How far the agent may run ahead of a caller on one stream (response bytes in flight)."""
READ_SIZE = 1 << 16


class LinkClosed(Exception):
    """The agent's connection went away before the stream was answered."""


class BodyCut(Exception):
    """The agent's answer stopped part-way: the caller must see an incomplete response."""


class BadExchange(Exception):
    """The agent's answer broke HTTP/2's rules, or it found the request malformed: sending
    the request again would only repeat it."""


class StreamRefused(LinkClosed):
    """The agent declined the stream unprocessed (draining): safe to send elsewhere."""

    def __init__(self) -> None:
        super().__init__("the agent is draining this connection and refused the request")


@dataclass
class _Pending:
    head: asyncio.Future[tuple[int, list[tuple[str, str]]]]
    chunks: asyncio.Queue[bytes | Exception | None] = field(default_factory=asyncio.Queue)
    """Body data; then None at a clean end, or the failure that cut the body short."""
    window: asyncio.Event = field(default_factory=asyncio.Event)
    unacknowledged: int = 0
    """Response bytes received but not yet acknowledged (given back to the windows)."""


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]


class AgentLink:
    def __init__(
        self,
        identity: Identity,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        issued: datetime,
        serial: int = 0,
        heartbeat: float,
        dead_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity, self.reader, self.writer = identity, reader, writer
        self.issued = issued
        """When the agent's certificate became valid (revocations refuse by issue time)."""
        self.serial = serial
        """The agent certificate's serial number (named in logs)."""
        self.on_room: Callable[[], None] = lambda: None
        """Called when a stream ends here, so a request waiting for room may try again."""
        self.liveness = Liveness(clock, heartbeat, dead_after)
        self.h2 = wire.connection(client_side=True)
        self.outbox = Outbox(self.h2.data_to_send, writer)
        self.streams: dict[int, _Pending] = {}
        self.since = time.time()
        self.closed = asyncio.Event()
        self.draining = False
        self.last_processed: int | None = None
        """From the agent's GOAWAY: streams above it were never processed (safe to retry)."""

    @property
    def in_flight(self) -> int:
        return len(self.streams)

    @property
    def has_room(self) -> bool:
        """Whether the agent's MAX_CONCURRENT_STREAMS allows one more stream now."""
        limit = self.h2.remote_settings.max_concurrent_streams
        return self.h2.open_outbound_streams < limit

    async def run(self) -> None:
        wire.open_connection(self.h2, STREAM_WINDOW)
        await self.outbox.flush()
        heart = asyncio.create_task(
            keep_alive(self.liveness, self.h2.ping, self.outbox.flush, self._dead)
        )
        try:
            while data := await self.reader.read(READ_SIZE):
                for event in self.h2.receive_data(data):
                    self._on(event)
                await self.outbox.flush()
                self.on_room()
        except (ConnectionError, h2.exceptions.ProtocolError) as exc:
            log.info("agent %s: connection lost: %s", self.identity.agent_id, exc)
        finally:
            heart.cancel()
            self._fail_all()
            self.closed.set()
            self.outbox.close()
            self.on_room()

    def abort(self) -> None:
        """Drop the connection at once (revocation, dead path)."""
        self.writer.transport.abort()

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> tuple[int, Reply]:
        """Open a stream, send the request, and wait for the response head."""
        if self.closed.is_set():
            raise LinkClosed("the agent's connection is closed")
        sid = self.h2.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "https"),
                  (":authority", self.identity.agent_id), *headers]  # fmt: skip
        pending = _Pending(asyncio.get_running_loop().create_future())
        self.streams[sid] = pending
        try:
            self.h2.send_headers(sid, wire.encode(fields), end_stream=body is None)
            if body is not None:
                async for chunk in body:
                    await self._send(sid, pending, chunk)
                self.h2.end_stream(sid)
            await self.outbox.flush()
            status, response_headers = await pending.head
        except BaseException:  # timed out, caller gone, or link lost: the stream is over
            await self.cancel(sid)
            raise
        return sid, Reply(status, response_headers, self._body(sid, pending))

    async def cancel(self, sid: int) -> None:
        pending = self.streams.pop(sid, None)
        if pending is None or self.closed.is_set():
            return
        # ProtocolError: once the agent has sent GOAWAY, h2 refuses to send a reset.
        with contextlib.suppress(h2.exceptions.ProtocolError, ConnectionError):
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        self._give_back(sid, pending.unacknowledged)  # else the connection window shrinks
        self.on_room()
        with contextlib.suppress(ConnectionError):
            await self.outbox.flush()

    def _give_back(self, sid: int, size: int) -> None:
        if size > 0:
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                self.h2.acknowledge_received_data(size, sid)

    async def _body(self, sid: int, pending: _Pending) -> AsyncIterator[bytes]:
        while (chunk := await pending.chunks.get()) is not None:
            if isinstance(chunk, Exception):
                # Not a LinkClosed (which means "unanswered, maybe retry"): the answer has
                # begun, so the caller's connection is cut to show the body is incomplete.
                raise BodyCut(str(chunk))
            yield chunk
            # Acknowledged only now that the caller took it: this is the back-pressure.
            pending.unacknowledged -= len(chunk)
            self._give_back(sid, len(chunk))
            with contextlib.suppress(ConnectionError):
                await self.outbox.flush()
        self.streams.pop(sid, None)

    async def _send(self, sid: int, pending: _Pending, data: bytes) -> None:
        def room() -> int:
            return min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)

        await send_windowed(
            data,
            room,
            lambda piece: self.h2.send_data(sid, piece),
            self.outbox.flush_now,
            pending.window,
        )

    def _on(self, event: h2.events.Event) -> None:
        match event:
            case h2.events.ResponseReceived(stream_id=sid, headers=headers):
                self._head(sid, headers or [])
            case h2.events.DataReceived(stream_id=sid, data=data, flow_controlled_length=size):
                pending = self.streams.get(sid)
                if pending is None:
                    self._give_back(sid, size or 0)  # for a stream already given up
                elif data:
                    pending.unacknowledged += len(data)
                    pending.chunks.put_nowait(data)
            case h2.events.StreamEnded(stream_id=sid):
                self._end(sid, None)
            case h2.events.StreamReset(stream_id=sid, error_code=code):
                self._end(sid, _reset_reason(code))
            case h2.events.WindowUpdated(stream_id=sid):
                for key, pending in self.streams.items():
                    if sid in (0, key):
                        pending.window.set()
            case h2.events.RemoteSettingsChanged(changed_settings=changed):
                self._on_settings(changed)
            case h2.events.ConnectionTerminated(last_stream_id=last):
                self.draining = True  # the agent is going away: no new streams here
                self.last_processed = last if last is not None else 0
            case h2.events.PingAckReceived(ping_data=payload):
                self.liveness.acknowledged(payload or b"")

    def _on_settings(self, changed: dict[Any, Any]) -> None:
        limit = changed.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
        if limit is not None and limit.new_value == 0:
            self.draining = True  # the agent is draining: route new requests elsewhere

    def _head(self, sid: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        pending = self.streams.get(sid)
        if pending is None or pending.head.done():
            return
        fields = wire.decode(headers)
        problem = wire.header_problem(fields, wire.RESPONSE_PSEUDO, wire.RESPONSE_NEEDS)
        status = dict(fields).get(":status", "")
        if problem is None and not (status.isdigit() and 200 <= int(status) <= 599):
            problem = f"status {status!r} is not a final status (200-599)"
        if problem is not None:
            log.warning("agent %s: bad response on stream %d: %s", self.identity.agent_id,
                        sid, problem)  # fmt: skip
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            pending.head.set_exception(BadExchange(f"the agent's answer was malformed: {problem}"))
            return
        pending.head.set_result((int(status), [(k, v) for k, v in fields if k[0] != ":"]))

    def _end(self, sid: int, failure: Exception | None) -> None:
        """The stream ended: cleanly (None) or reset by the agent (why)."""
        pending = self.streams.get(sid)
        if pending is None:
            return
        if not pending.head.done():
            pending.head.set_exception(failure or LinkClosed("the agent sent no answer"))
        pending.chunks.put_nowait(failure)

    def _fail_all(self) -> None:
        for sid, pending in self.streams.items():
            if not pending.head.done():
                unprocessed = self.last_processed is not None and sid > self.last_processed
                lost = LinkClosed("the agent's connection was lost")
                pending.head.set_exception(StreamRefused() if unprocessed else lost)
            pending.chunks.put_nowait(LinkClosed("the agent's connection was lost"))
            pending.window.set()

    def _dead(self) -> None:
        agent = self.identity.agent_id
        log.warning("agent %s: silent for %.0f s; closing", agent, self.liveness.dead_after)
        self.abort()


def _reset_reason(code: int) -> Exception:
    if code == h2.errors.ErrorCodes.REFUSED_STREAM:
        return StreamRefused()
    if code == h2.errors.ErrorCodes.PROTOCOL_ERROR:
        return BadExchange("the agent refused the request as malformed")
    return LinkClosed("the agent reset the stream")
