"""Pumps one tunnel connection: bytes to the session, requests to the pipeline, responses back.

Rules:
- Each request is taken in by `agent.api.intake` with the local listener's rules (`via=
  "relay"`) and runs as its own task through the same pipeline; it is answered through
  `pipeline.deliver`, which alone closes a streamed body. A stream the relay resets cancels
  its task, and so its query (and the body is closed all the same).
- The relay may open `max_streams` requests at once (`tunnel.max_streams`): a request waiting
  for one of the source's pooled connections waits here, holding its stream only, and is
  answered as soon as a connection frees; the tunnel goes on taking new streams meanwhile.
- Response bodies go out only as fast as the relay's HTTP/2 window allows (and the socket
  drains), so a slow caller never makes the agent buffer more than a window per stream.
- Paths under `/.bridgehead/` are the relay's control streams: certificate renewal,
  answered by agent.tunnel.control, never by the pipeline; and `/.bridgehead/events...`,
  the events API served by the pipeline to the relay itself (its webhook deliverer).
- PING every `heartbeat` seconds; nothing heard for `dead_after` seconds closes the
  connection (a silently dead path), and the client dials a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import h2.exceptions

from bridgehead.agent.api.intake import Intake, Peer
from bridgehead.agent.api.message import ApiRequest
from bridgehead.agent.api.pipeline import Pipeline, deliver
from bridgehead.agent.tunnel import control as control_streams
from bridgehead.agent.tunnel.renewal import Renewer
from bridgehead.common.requestid import bound
from bridgehead.common.tunnel import control
from bridgehead.common.tunnel import server_session as ev
from bridgehead.common.tunnel.liveness import Liveness, keep_alive, send_windowed
from bridgehead.common.tunnel.outbox import Outbox
from bridgehead.common.tunnel.server_session import DEFAULT_MAX_STREAMS, ServerSession
from bridgehead.common.tunnel.session import READ_SIZE

log = logging.getLogger("bridgehead.tunnel")
CLEANUP_GRACE = 5.0


class BodyFeed:
    """A bulk load's body on one stream, handed to the pipeline as it arrives: each piece's
    flow-control credit goes back to the relay only once the pipeline took it, so at most a
    stream window of it waits here. Once the answer is out, the rest is taken and dropped."""

    END = b""

    def __init__(
        self, consumed: Callable[[int], None], flush: Callable[[], Awaitable[None]]
    ) -> None:
        self._consumed, self._flush = consumed, flush
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._dropping = False

    def put(self, data: bytes) -> None:
        if self._dropping:
            self._consumed(len(data))
        elif data:
            self._queue.put_nowait(data)

    def end(self, error: BaseException | None = None) -> None:
        self._queue.put_nowait(self.END if error is None else error)

    def drop_rest(self) -> None:
        """The answer is out: what is queued and what still comes is taken and dropped."""
        self._dropping = True
        while not self._queue.empty():
            piece = self._queue.get_nowait()
            if isinstance(piece, bytes):
                self._consumed(len(piece))

    async def pieces(self) -> AsyncIterator[bytes]:
        while True:
            piece = await self._queue.get()
            if isinstance(piece, BaseException):
                raise piece
            if not piece:
                return
            self._consumed(len(piece))
            await self._flush()
            yield piece


@dataclass
class _Stream:
    headers: dict[str, str]
    intake: Intake
    task: asyncio.Task[None] | None = None
    control: bool = False
    """The relay's own stream (common.tunnel.control), not a caller's request."""
    window: asyncio.Event = field(default_factory=asyncio.Event)
    body: BodyFeed | None = None
    """A bulk load's body, served as it arrives (the request runs before it ends)."""


class TunnelConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pipeline: Pipeline,
        *,
        max_body: int,
        heartbeat: float,
        dead_after: float,
        clock: Callable[[], float] = time.monotonic,
        renewer: Renewer | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        self.reader, self.writer, self.pipeline = reader, writer, pipeline
        self.renewer = renewer
        self.max_body = max_body
        self.liveness = Liveness(clock, heartbeat, dead_after)
        self.session = ServerSession(max_streams)
        self.outbox = Outbox(self.session.outgoing, writer)
        self._streams: dict[int, _Stream] = {}
        """Every open stream, the relay's control streams included."""
        self.draining = False
        self.drained = asyncio.Event()
        """Set once the connection takes no new streams: long polls answer at once."""
        self.relay_stopped = False
        """The relay opens no new streams (it acknowledged the drain, or sent GOAWAY)."""
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        """Every request still being served, reset or not: waited for when the connection ends."""

    async def run(self) -> None:
        """Serve until the relay closes, the path dies, or a drain completes."""
        self.session.start()
        await self.outbox.flush()
        heart = asyncio.create_task(
            keep_alive(self.liveness, self.session.ping, self.outbox.flush, self._dead)
        )
        try:
            await self._read()
        finally:
            heart.cancel()
            for task in self._tasks:
                task.cancel()
            if self._tasks:  # their cleanup (closing exports, audit records) ends before ours
                await asyncio.wait(set(self._tasks), timeout=CLEANUP_GRACE)
            self.outbox.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.closed.set()

    @property
    def streams(self) -> dict[int, _Stream]:
        """The callers' requests in flight (the relay's control streams left out)."""
        return {sid: stream for sid, stream in self._streams.items() if not stream.control}

    async def drain(self) -> None:
        """Take no new requests; the connection closes once those in flight are answered
        and the relay has acknowledged the drain (so no request crosses the GOAWAY)."""
        self.draining = True
        self.drained.set()
        self.session.stop_new_streams()
        await self.outbox.flush()

    def _drained(self) -> bool:
        return self.draining and self.relay_stopped and not self._streams

    async def _finish(self) -> None:
        """The drain is done: GOAWAY, then close."""
        with contextlib.suppress(Exception):
            self.session.close()
            await self.outbox.flush_now()
        self.outbox.close()

    async def _read(self) -> None:
        while data := await self.reader.read(READ_SIZE):
            for event in self.session.receive(data):
                self._on(event)
            await self.outbox.flush()
            if self._drained():
                await self._finish()  # acknowledged, or the last stream reset: done here
                return

    def _on(self, event: ev.Event) -> None:
        match event:
            case ev.RequestReceived():
                self._on_request(event)
            case ev.RequestRejected(stream_id=sid, reason=reason):
                log.warning("tunnel: refused the request on stream %d: %s", sid, reason)
            case ev.BodyReceived():
                self._on_body(event)
            case ev.RequestComplete(stream_id=sid):
                self._on_complete(sid)
            case ev.StreamCancelled(stream_id=sid):
                stream = self._streams.pop(sid, None)
                if stream is not None and stream.task is not None:
                    stream.task.cancel()
            case ev.WindowOpened(stream_ids=sids):
                for sid in sids:
                    if (stream := self._streams.get(sid)) is not None:
                        stream.window.set()
            case ev.PingAcknowledged(payload=payload):
                self.liveness.acknowledged(payload)
            case ev.Draining() | ev.DrainAcknowledged():
                self._on_drain(event)

    def _on_drain(self, event: ev.Draining | ev.DrainAcknowledged) -> None:
        """The relay sent GOAWAY (a drain of its own), or acknowledged ours."""
        self.relay_stopped = True
        if isinstance(event, ev.Draining):
            self.draining = True
            self.drained.set()

    def _on_request(self, event: ev.RequestReceived) -> None:
        if self.draining:
            self.session.refuse(event.stream_id)
        else:
            headers = event.headers
            own = control.is_control(headers.get(":path", ""))
            intake = self._intake(headers, event.fields)
            stream = self._streams[event.stream_id] = _Stream(headers, intake, control=own)
            if intake.streams_body and not own:
                sid = event.stream_id
                self.session.defer_credit(sid)
                stream.body = BodyFeed(lambda size: self.session.consumed(sid, size),
                                       self.outbox.flush)  # fmt: skip
                self._start(sid, stream)

    def _on_complete(self, sid: int) -> None:
        """The request's body is all in: serve it now (a bulk load already runs)."""
        stream = self._streams.get(sid)
        if stream is None:
            return
        if stream.body is not None:
            stream.body.end()
        elif stream.task is None:
            self._start(sid, stream)

    def _start(self, sid: int, stream: _Stream) -> None:
        stream.task = asyncio.create_task(self._serve(sid, stream))
        self._tasks.add(stream.task)
        stream.task.add_done_callback(self._tasks.discard)

    def _intake(self, headers: dict[str, str], received: Sequence[tuple[str, str]]) -> Intake:
        """The request as the local listener takes one in too (agent.api.intake): every
        header as received, so repeats are joined or refused exactly as there."""
        fields = [(k, v) for k, v in received if not k.startswith(":")]
        method, target = headers.get(":method", "GET"), headers.get(":path", "/")
        return Intake(method, target, fields, Peer("relay"), self.max_body)

    def _on_body(self, event: ev.BodyReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if stream.body is not None:
            stream.body.put(event.data)
        else:
            stream.intake.add(event.data)  # past max_body: dropped, answered 413 at the end

    async def _serve(self, sid: int, stream: _Stream) -> None:
        try:
            body = stream.body.pieces() if stream.body is not None else None
            request, refusal = stream.intake.finish(stream=body)
            sink = _TunnelSink(self, sid, stream)
            if stream.control and request.path.startswith(control.EVENTS):
                await self._relay_events(request, refusal, sink)
            elif stream.control:
                await control_streams.answer(self, request, sink)
            else:
                with bound(request.request_id):  # every line logged for it names it
                    await deliver(await self.pipeline.handle(request, refusal), sink)
        except (h2.exceptions.StreamClosedError, ConnectionError):
            pass  # the relay gave up on this stream, or the connection went away
        except Exception:
            log.exception("tunnel: request on stream %d failed mid-answer", sid)
            with contextlib.suppress(Exception):
                self.session.reset(sid)  # the relay must not wait for an end that never comes
                await self.outbox.flush()
        finally:
            if stream.body is not None:
                stream.body.drop_rest()
            self._streams.pop(sid, None)
            if self._drained():
                await self._finish()

    async def _relay_events(
        self, request: ApiRequest, refusal: Exception | None, sink: _TunnelSink
    ) -> None:
        """The relay's webhook deliverer on `/.bridgehead/events...`: the events API, as the
        relay itself; a stream still open when the connection drains (answering or waiting
        for its first event) is reset, so it never holds the drain up (the relay reads on
        from its committed position elsewhere)."""
        path = "/v1/events" + request.path.removeprefix(control.EVENTS)
        relayed = dataclasses.replace(request, path=path, as_relay=True)

        async def answer() -> None:
            await deliver(await self.pipeline.handle(relayed, refusal), sink)

        answering = asyncio.ensure_future(answer())
        drained = asyncio.ensure_future(self.drained.wait())
        try:
            await asyncio.wait({answering, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not answering.done():
                answering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answering
                await sink.reset()
        if not answering.cancelled():
            answering.result()

    async def _send(self, sid: int, stream: _Stream, data: bytes) -> None:
        await send_windowed(
            data,
            lambda: self.session.sendable(sid),
            lambda piece: self.session.send_body(sid, piece),
            self.outbox.flush_now,
            stream.window,
        )

    def _dead(self) -> None:
        log.warning("tunnel: nothing heard for %.0f s; closing it", self.liveness.dead_after)
        self.writer.transport.abort()


class _TunnelSink:
    """An answer on one stream: headers, then the body as the relay's window allows."""

    def __init__(self, connection: TunnelConnection, sid: int, stream: _Stream) -> None:
        self.connection, self.session, self.sid, self.stream = (
            connection, connection.session, sid, stream,
        )  # fmt: skip

    async def whole(self, status: int, headers: dict[str, str], body: bytes) -> None:
        headers = {**headers, "content-length": str(len(body))}
        self.session.respond(self.sid, status, headers, end=not body)
        if body and len(body) <= self.session.sendable(self.sid):
            self.session.send_body(self.sid, body, end=True)  # one write for the whole answer
        elif body:
            await self.chunk(body)
            self.session.end(self.sid)
        await self.connection.outbox.flush()

    async def head(self, status: int, headers: dict[str, str]) -> None:
        self.session.respond(self.sid, status, dict(headers), end=False)

    async def chunk(self, data: bytes) -> None:
        await self.connection._send(self.sid, self.stream, data)

    async def end(self) -> None:
        self.session.end(self.sid)
        await self.connection.outbox.flush()

    async def reset(self) -> None:
        """End the answer unfinished (the relay sees the stream reset)."""
        with contextlib.suppress(Exception):
            self.session.reset(self.sid)
            await self.connection.outbox.flush()
