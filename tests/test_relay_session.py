# The relay's tunnel session without sockets: the ClientSession paired in memory with the
# agent's ServerSession, or with a bare h2 server that breaks the rules on purpose, bytes
# carried by hand. Requests are framed as HTTP/2 streams, response heads are checked,
# bodies obey the windows both ways, and resets, GOAWAY, drains and PINGs become events.
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from bridgehead.common.tunnel import client_session as ev
from bridgehead.common.tunnel import server_session as agent_ev
from bridgehead.common.tunnel import wire
from bridgehead.common.tunnel.client_session import ClientSession, ResetReason
from bridgehead.common.tunnel.server_session import ServerSession
from bridgehead.common.tunnel.session import STREAM_WINDOW

HEADERS = [("authorization", "Bearer k"), ("x-request-id", "r-1")]


class Agent(Protocol):
    def receive(self, data: bytes) -> Sequence[object]: ...
    def outgoing(self) -> bytes: ...


class RawAgent:
    """An h2 server with h2's own header checks off, to send what a broken agent would."""

    def __init__(self) -> None:
        lax = h2.config.H2Configuration(
            client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False
        )
        self.h2 = h2.connection.H2Connection(lax)
        self.h2.initiate_connection()

    def receive(self, data: bytes) -> list[h2.events.Event]:
        return self.h2.receive_data(data)

    def outgoing(self) -> bytes:
        return self.h2.data_to_send()


def exchange(relay: ClientSession, agent: Agent) -> tuple[list[ev.Event], list[object]]:
    """Carry bytes both ways until both sides are quiet; the relay's and the agent's events."""
    relay_events: list[ev.Event] = []
    agent_events: list[object] = []
    for _ in range(10):
        to_agent, to_relay = relay.outgoing(), agent.outgoing()
        if not to_agent and not to_relay:
            break
        if to_agent:
            agent_events += agent.receive(to_agent)
        if to_relay:
            relay_events += relay.receive(to_relay)
    return relay_events, agent_events


def pair() -> tuple[ClientSession, ServerSession]:
    relay, agent = ClientSession(authority="plant-7"), ServerSession()
    relay.start()
    agent.start()
    exchange(relay, agent)
    return relay, agent


def raw_pair() -> tuple[ClientSession, RawAgent]:
    relay, agent = ClientSession(authority="plant-7"), RawAgent()
    relay.start()
    exchange(relay, agent)
    return relay, agent


def answered(relay: ClientSession, agent: RawAgent, block: list[tuple[str, str]], end: bool) -> int:
    """A GET whose answer is `block` (sent as is, unchecked), its body to follow unless
    `end`: its stream id."""
    sid = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    exchange(relay, agent)
    agent.h2.send_headers(sid, block, end_stream=end)
    return sid


def test_a_request_is_its_head_then_its_body() -> None:
    """open_stream sends the pseudo-headers first (:authority the agent's id, :scheme https),
    then the caller's headers in order; the body follows as DATA and `end` completes it."""
    relay, agent = raw_pair()
    sid = relay.open_stream("POST", "/v1/t?limit=2", HEADERS, end=False)
    relay.send_body(sid, b'{"id": 1}')
    relay.end(sid)
    _, events = exchange(relay, agent)
    (head,) = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    assert wire.decode(head.headers) == [
        (":method", "POST"),
        (":path", "/v1/t?limit=2"),
        (":scheme", "https"),
        (":authority", "plant-7"),
        *HEADERS,
    ]
    body = [e.data for e in events if isinstance(e, h2.events.DataReceived)]
    assert b"".join(body) == b'{"id": 1}'
    assert isinstance(events[-1], h2.events.StreamEnded)


def test_a_bodiless_request_ends_with_its_head() -> None:
    """With end=True the stream is complete at its head: the agent sees the request and its
    end, and no body."""
    relay, agent = pair()
    sid = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    _, events = exchange(relay, agent)
    assert [type(e) for e in events] == [agent_ev.RequestReceived, agent_ev.RequestComplete]
    expected = {
        ":method": "GET",
        ":path": "/v1/t/1",
        ":scheme": "https",
        ":authority": "plant-7",
        "authorization": "Bearer k",
        "x-request-id": "r-1",
    }
    assert events[0] == agent_ev.RequestReceived(sid, expected, tuple(expected.items()))


def test_a_response_is_its_head_body_and_end() -> None:
    """A well-formed answer is ResponseReceived (status as a number, regular headers in
    order, no pseudo-headers), then BodyReceived, then StreamEnded."""
    relay, agent = pair()
    sid = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    exchange(relay, agent)
    agent.respond(sid, 200, {"content-type": "application/json", "content-length": "2"}, False)
    agent.send_body(sid, b"{}", end=True)
    events, _ = exchange(relay, agent)
    assert events == [
        ev.ResponseReceived(
            sid, 200, [("content-type", "application/json"), ("content-length", "2")]
        ),
        ev.BodyReceived(sid, b"{}"),
        ev.StreamEnded(sid),
    ]


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        ([(":status", "200"), (":status", "204")], "more than once"),
        ([(":status", "200"), ("x-id", "a\r\nb: c")], "control character"),
        ([(":status", "200"), (":path", "/")], "unknown"),
        ([("content-type", "text/plain")], "lacks :status"),
        ([(":status", "600")], "not a final status"),
        ([(":status", "abc")], "not a final status"),
    ],
)
def test_a_malformed_response_head_fails_only_its_own_stream(
    block: list[tuple[str, str]], reason: str
) -> None:
    """A response head breaking HTTP/2's rules, or with a status outside 200-599, is
    ResponseRejected with the reason, and the session resets that stream with PROTOCOL_ERROR
    itself; the connection lives on and the next stream is answered."""
    relay, agent = raw_pair()
    bad = answered(relay, agent, block, end=False)
    events, agent_events = exchange(relay, agent)
    (rejected,) = [e for e in events if isinstance(e, ev.ResponseRejected)]
    assert rejected.stream_id == bad
    assert reason in rejected.reason
    resets = [e for e in agent_events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [
        (bad, h2.errors.ErrorCodes.PROTOCOL_ERROR)
    ]
    good = answered(relay, agent, [(":status", "204")], end=True)
    events, _ = exchange(relay, agent)
    assert ev.ResponseReceived(good, 204, []) in events


def test_request_bodies_obey_the_agents_window() -> None:
    """`sendable` never exceeds one frame nor what is left of the agent's window for the
    stream (STREAM_WINDOW, which the agent announces); once the agent has read the bytes,
    WindowOpened names the stream and it may send again."""
    relay, agent = pair()
    sid = relay.open_stream("POST", "/v1/t", HEADERS, end=False)
    sent = 0
    while (room := relay.sendable(sid)) > 0:
        assert room <= wire.MAX_FRAME
        relay.send_body(sid, b"x" * room)
        sent += room
    assert sent == STREAM_WINDOW
    events, _ = exchange(relay, agent)
    assert any(isinstance(e, ev.WindowOpened) and sid in e.stream_ids for e in events)
    assert relay.sendable(sid) > 0


def test_response_data_is_acknowledged_only_when_asked() -> None:
    """Response bytes received are not handed back to the agent's window until the pump
    calls `acknowledge` (its caller took them): until then the agent may not send more."""
    relay, agent = pair()
    sid = relay.open_stream("GET", "/v1/big", HEADERS, end=True)
    exchange(relay, agent)
    agent.respond(sid, 200, {}, end=False)
    while (room := agent.sendable(sid)) > 0:
        agent.send_body(sid, b"x" * room)
    events, agent_events = exchange(relay, agent)
    received = sum(len(e.data) for e in events if isinstance(e, ev.BodyReceived))
    assert received == STREAM_WINDOW
    assert agent.sendable(sid) == 0
    assert not [e for e in agent_events if isinstance(e, agent_ev.WindowOpened)]
    relay.acknowledge(sid, received)
    _, agent_events = exchange(relay, agent)
    assert agent_ev.WindowOpened((sid,)) in agent_events
    assert agent.sendable(sid) > 0


def unacknowledged(relay: ClientSession) -> int:
    """Bytes the relay received on the connection and has not handed back (h2's window
    manager: consumed minus processed)."""
    window = relay._h2._inbound_flow_control_window_manager
    return window.max_window_size - window.current_window_size - window._bytes_processed


def test_padding_is_acknowledged_at_once_and_data_when_taken() -> None:
    """Padding, which no caller sees, goes back to the agent's windows as it arrives; the
    body bytes stay unacknowledged until `acknowledge` hands them back."""
    relay, agent = raw_pair()
    sid = answered(relay, agent, [(":status", "200")], end=False)
    agent.h2.send_data(sid, b"x" * 100, pad_length=200)
    events, _ = exchange(relay, agent)
    assert ev.BodyReceived(sid, b"x" * 100) in events
    assert unacknowledged(relay) == 100
    relay.acknowledge(sid, 100)
    assert unacknowledged(relay) == 0


def test_a_connection_window_update_wakes_every_open_stream() -> None:
    """A WINDOW_UPDATE for the whole connection (stream 0) is one WindowOpened naming every
    stream still open, so each waiting sender tries again."""
    relay, agent = raw_pair()  # h2's defaults: a 65,535-byte connection window
    first = relay.open_stream("POST", "/v1/t", HEADERS, end=False)
    second = relay.open_stream("POST", "/v1/t", HEADERS, end=False)
    while (room := relay.sendable(first)) > 0:
        relay.send_body(first, b"x" * room)
    assert relay.sendable(second) == 0  # the connection's window is spent
    exchange(relay, agent)
    agent.h2.increment_flow_control_window(1 << 16)  # the connection's window only
    events, _ = exchange(relay, agent)
    assert ev.WindowOpened((first, second)) in events
    assert relay.sendable(second) > 0


def test_a_larger_initial_window_wakes_every_open_stream() -> None:
    """An agent's SETTINGS raising the initial stream window opens every stream's window:
    WindowOpened names them all."""
    relay, agent = raw_pair()
    sid = relay.open_stream("POST", "/v1/t", HEADERS, end=False)
    exchange(relay, agent)
    agent.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 17})
    events, _ = exchange(relay, agent)
    assert ev.WindowOpened((sid,)) in events


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (h2.errors.ErrorCodes.REFUSED_STREAM, ResetReason.REFUSED),
        (h2.errors.ErrorCodes.PROTOCOL_ERROR, ResetReason.MALFORMED),
        (h2.errors.ErrorCodes.CANCEL, ResetReason.ABANDONED),
        (h2.errors.ErrorCodes.INTERNAL_ERROR, ResetReason.ABANDONED),
    ],
)
def test_an_agents_reset_says_why(code: h2.errors.ErrorCodes, reason: ResetReason) -> None:
    """RST_STREAM from the agent is StreamReset with its code and what it means: refused
    unprocessed (REFUSED_STREAM), the request found malformed (PROTOCOL_ERROR), or
    abandoned (any other code)."""
    relay, agent = raw_pair()
    sid = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    exchange(relay, agent)
    agent.h2.reset_stream(sid, code)
    events, _ = exchange(relay, agent)
    assert events == [ev.StreamReset(sid, reason, int(code))]


def test_a_stream_refused_by_a_draining_agent_is_marked_for_retry() -> None:
    """The agent's `refuse` reaches the relay as a reset whose reason is REFUSED."""
    relay, agent = pair()
    sid = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    exchange(relay, agent)
    agent.refuse(sid)
    events, _ = exchange(relay, agent)
    assert ev.StreamReset(sid, ResetReason.REFUSED, h2.errors.ErrorCodes.REFUSED_STREAM) in events


def test_the_relays_reset_cancels_the_agents_stream() -> None:
    """`reset` sends RST_STREAM CANCEL (the agent sees StreamCancelled and stops the query);
    resetting a stream already over sends nothing and does not raise."""
    relay, agent = pair()
    sid = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    exchange(relay, agent)
    relay.reset(sid)
    _, agent_events = exchange(relay, agent)
    assert agent_events == [agent_ev.StreamCancelled(sid)]
    relay.reset(sid)
    assert relay.outgoing() == b""


def test_goaway_is_draining_with_the_last_stream_processed() -> None:
    """The agent's GOAWAY is Draining naming the last stream it processed: streams above it
    were never seen (safe to send elsewhere). After it, a reset sends nothing and does not
    raise."""
    relay, agent = raw_pair()
    first = relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    exchange(relay, agent)
    relay.open_stream("GET", "/v1/t/2", HEADERS, end=True)  # not yet read by the agent
    agent.h2.close_connection(last_stream_id=first)
    events = relay.receive(agent.outgoing())
    assert events == [ev.Draining(first)]
    relay.reset(first)


def test_a_goaway_with_no_stream_processed_names_stream_zero() -> None:
    """A GOAWAY before any stream was processed is Draining(0): every stream may be retried."""
    relay, agent = pair()
    relay.open_stream("GET", "/v1/t/1", HEADERS, end=True)
    relay.outgoing()  # lost on the way: the agent never sees the stream
    agent.close()
    assert relay.receive(agent.outgoing()) == [ev.Draining(0)]


def test_no_new_streams_is_draining_without_a_last_stream() -> None:
    """The agent's MAX_CONCURRENT_STREAMS of 0 (its drain) is Draining with no last stream
    (streams in flight go on), and the relay has no room for another stream."""
    relay, agent = pair()
    assert relay.has_room
    agent.stop_new_streams()
    events, _ = exchange(relay, agent)
    assert ev.Draining(None) in events
    assert not relay.has_room


def test_a_ping_is_acknowledged_with_its_payload() -> None:
    """A PING the agent answers comes back as PingAcknowledged carrying the same payload."""
    relay, agent = pair()
    relay.ping(b"12345678")
    events, _ = exchange(relay, agent)
    assert events == [ev.PingAcknowledged(b"12345678")]
