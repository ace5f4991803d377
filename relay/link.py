"""One agent's tunnel connection, seen from the relay: it pumps the relay's HTTP/2 client
session (common/tunnel/client_session) on a socket the agent opened, sending cloud callers'
requests down to the agent.

The session holds every HTTP/2 rule; this module only reads the socket, feeds the session,
hands its events to each stream's future (the head) and queue (the body), flushes the
session's bytes through the outbox and keeps the PINGs going.

Rules:
- Each caller request is one HTTP/2 stream. Request bodies go as fast as the agent's window
  allows; response data is acknowledged only once the caller has taken it, so the agent
  never sends more than a window ahead of a slow caller, and other streams keep flowing.
  A stream given up gives back what it had not acknowledged, and data for a stream no
  longer here is acknowledged at once, so the connection's window never shrinks.
- A caller that goes away resets its stream; the agent then cancels the query.
- The relay's own control streams (relay.renewal's long poll) are not counted in
  `in_flight`, so they never make a link look busier than its callers' requests.
- PINGs measure the round trip; a connection silent for `dead_after` is closed.
- A response whose header block breaks HTTP/2's rules fails its own stream (BadExchange, a
  502 never retried), not the link; so does the agent's verdict that a request was malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import h2.exceptions
import orjson

from bridgehead.certs.pki import Identity
from bridgehead.common.tunnel import client_session as ev
from bridgehead.common.tunnel import control
from bridgehead.common.tunnel.client_session import ClientSession, ResetReason
from bridgehead.common.tunnel.liveness import Liveness, keep_alive, send_windowed
from bridgehead.common.tunnel.outbox import Outbox
from bridgehead.common.tunnel.session import READ_SIZE

log = logging.getLogger("bridgehead.relay")


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
    control: bool = False
    """The relay's own stream (not a caller's): not counted as in flight."""


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]


class AgentLink:
    """Pumps one agent connection: socket bytes to the session, its events to the streams'
    futures and queues, and the session's output back through the outbox."""

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
        self.session = ClientSession(authority=identity.agent_id)
        self.outbox = Outbox(self.session.outgoing, writer)
        self._streams: dict[int, _Pending] = {}
        """Every open stream, the relay's own control streams included."""
        self.since = time.time()
        self.closed = asyncio.Event()
        self.draining = False
        self.last_processed: int | None = None
        """From the agent's GOAWAY: streams above it were never processed (safe to retry)."""

    @property
    def streams(self) -> dict[int, _Pending]:
        """The callers' streams open on this link (control streams left out)."""
        return {sid: pending for sid, pending in self._streams.items() if not pending.control}

    @property
    def in_flight(self) -> int:
        return len(self.streams)

    @property
    def has_room(self) -> bool:
        """Whether the agent's MAX_CONCURRENT_STREAMS allows one more stream now."""
        return self.session.has_room

    async def run(self) -> None:
        self.session.start()
        await self.outbox.flush()
        heart = asyncio.create_task(
            keep_alive(self.liveness, self.session.ping, self.outbox.flush, self._dead)
        )
        try:
            while data := await self.reader.read(READ_SIZE):
                for event in self.session.receive(data):
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
        *,
        control: bool = False,
    ) -> tuple[int, Reply]:
        """Open a stream, send the request, and wait for the response head (`control`: the
        relay's own request, not a caller's)."""
        if self.closed.is_set():
            raise LinkClosed("the agent's connection is closed")
        sid = self.session.open_stream(method, path, headers, end=body is None)
        pending = _Pending(asyncio.get_running_loop().create_future(), control=control)
        self._streams[sid] = pending
        try:
            if body is not None:
                async for chunk in body:
                    await self._send(sid, pending, chunk)
                self.session.end(sid)
            await self.outbox.flush()
            status, response_headers = await pending.head
        except BaseException:  # timed out, caller gone, or link lost: the stream is over
            await self.cancel(sid)
            raise
        return sid, Reply(status, response_headers, self._body(sid, pending))

    async def exchange(
        self,
        method: str,
        path: str,
        message: dict[str, Any] | None = None,
        limit: int = control.MAX_MESSAGE,
    ) -> tuple[int, bytes]:
        """One control request (the relay's own), its JSON body `message`, and the whole
        answer, bounded by `limit` bytes."""
        body = None if message is None else _once(orjson.dumps(message))
        headers = [("content-type", "application/json")] if message is not None else []
        sid, reply = await self.request(method, path, headers, body, control=True)
        pieces, size = [], 0
        try:
            async for chunk in reply.body:
                size += len(chunk)
                if size > limit:
                    raise BadExchange("the agent's control answer is too large")
                pieces.append(chunk)
        finally:
            await self.cancel(sid)  # a no-op once the answer ended
        return reply.status, b"".join(pieces)

    async def cancel(self, sid: int) -> None:
        pending = self._streams.pop(sid, None)
        if pending is None or self.closed.is_set():
            return
        self.session.reset(sid)
        self.session.acknowledge(sid, pending.unacknowledged)  # else the window shrinks
        self.on_room()
        with contextlib.suppress(ConnectionError):
            await self.outbox.flush()

    async def _body(self, sid: int, pending: _Pending) -> AsyncIterator[bytes]:
        while (chunk := await pending.chunks.get()) is not None:
            if isinstance(chunk, Exception):
                # Not a LinkClosed (which means "unanswered, maybe retry"): the answer has
                # begun, so the caller's connection is cut to show the body is incomplete.
                raise BodyCut(str(chunk))
            yield chunk
            # Acknowledged only now that the caller took it: this is the back-pressure.
            pending.unacknowledged -= len(chunk)
            self.session.acknowledge(sid, len(chunk))
            with contextlib.suppress(ConnectionError):
                await self.outbox.flush()
        self._streams.pop(sid, None)

    async def _send(self, sid: int, pending: _Pending, data: bytes) -> None:
        await send_windowed(
            data,
            lambda: self.session.sendable(sid),
            lambda piece: self.session.send_body(sid, piece),
            self.outbox.flush_now,
            pending.window,
        )

    def _on(self, event: ev.Event) -> None:
        match event:
            case ev.ResponseReceived(stream_id=sid, status=status, headers=headers):
                pending = self._streams.get(sid)
                if pending is not None and not pending.head.done():
                    pending.head.set_result((status, headers))
            case ev.ResponseRejected():
                self._rejected(event)
            case ev.BodyReceived(stream_id=sid, data=data):
                self._on_body(sid, data)
            case ev.StreamEnded(stream_id=sid):
                self._end(sid, None)
            case ev.StreamReset(stream_id=sid, reason=reason):
                self._end(sid, _reset_failure(reason))
            case ev.WindowOpened(stream_ids=sids):
                for sid in sids:
                    if (pending := self._streams.get(sid)) is not None:
                        pending.window.set()
            case ev.Draining(last_processed=last):
                self.draining = True  # the agent is going away: route new requests elsewhere
                if last is not None:
                    self.last_processed = last
            case ev.PingAcknowledged(payload=payload):
                self.liveness.acknowledged(payload)

    def _on_body(self, sid: int, data: bytes) -> None:
        pending = self._streams.get(sid)
        if pending is None:
            self.session.acknowledge(sid, len(data))  # for a stream already given up
        else:
            pending.unacknowledged += len(data)
            pending.chunks.put_nowait(data)

    def _rejected(self, event: ev.ResponseRejected) -> None:
        """The agent's response head was malformed; the session has reset its stream."""
        pending = self._streams.get(event.stream_id)
        if pending is None or pending.head.done():
            return
        log.warning("agent %s: bad response on stream %d: %s", self.identity.agent_id,
                    event.stream_id, event.reason)  # fmt: skip
        failure = BadExchange(f"the agent's answer was malformed: {event.reason}")
        pending.head.set_exception(failure)

    def _end(self, sid: int, failure: Exception | None) -> None:
        """The stream ended: cleanly (None) or reset by the agent (why)."""
        pending = self._streams.get(sid)
        if pending is None:
            return
        if not pending.head.done():
            pending.head.set_exception(failure or LinkClosed("the agent sent no answer"))
        pending.chunks.put_nowait(failure)

    def _fail_all(self) -> None:
        for sid, pending in self._streams.items():
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


def _reset_failure(reason: ResetReason) -> Exception:
    if reason is ResetReason.REFUSED:
        return StreamRefused()
    if reason is ResetReason.MALFORMED:
        return BadExchange("the agent refused the request as malformed")
    return LinkClosed("the agent reset the stream")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
