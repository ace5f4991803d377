# The agent's tunnel session without sockets: an h2 client (the relay's role) and the
# ServerSession exchange bytes in memory. Requests become events, response bodies respect
# the relay's flow-control window, resets, GOAWAY and PINGs surface as events.
from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import pytest

from bridgehead.common.tunnel import server_session as ev
from bridgehead.common.tunnel.server_session import ServerSession


def pair() -> tuple[h2.connection.H2Connection, ServerSession]:
    relay = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    agent = ServerSession()
    relay.initiate_connection()
    agent.start()
    exchange(relay, agent)
    return relay, agent


def exchange(relay: h2.connection.H2Connection, agent: ServerSession) -> list[ev.Event]:
    """Carry bytes both ways until both sides are quiet; the agent's events."""
    events: list[ev.Event] = []
    for _ in range(10):
        to_agent, to_relay = relay.data_to_send(), agent.outgoing()
        if not to_agent and not to_relay:
            break
        if to_agent:
            events += agent.receive(to_agent)
        if to_relay:
            relay.receive_data(to_relay)
    return events


def request(relay: h2.connection.H2Connection, body: bytes = b"") -> int:
    sid = relay.get_next_available_stream_id()
    headers = [
        (":method", "POST" if body else "GET"),
        (":path", "/v1/t?limit=2"),
        (":scheme", "https"),
        (":authority", "plant-7"),
        ("authorization", "Bearer k"),
    ]
    relay.send_headers(sid, headers, end_stream=not body)
    if body:
        relay.send_data(sid, body, end_stream=True)
    return sid


def test_a_request_becomes_events() -> None:
    """A request's headers, body and end arrive as three events, in that order."""
    relay, agent = pair()
    sid = request(relay, b'{"id": 1}')
    events = exchange(relay, agent)
    expected = {
        ":method": "POST",
        ":path": "/v1/t?limit=2",
        ":scheme": "https",
        ":authority": "plant-7",
        "authorization": "Bearer k",
    }
    assert events[0] == ev.RequestReceived(sid, expected, tuple(expected.items()))
    assert ev.BodyReceived(sid, b'{"id": 1}') in events
    assert events[-1] == ev.RequestComplete(sid)


def test_response_bodies_wait_for_the_window() -> None:
    """The agent may send only what the relay's window allows; the relay's ack reopens it."""
    relay, agent = pair()
    sid = request(relay)
    exchange(relay, agent)
    agent.respond(sid, 200, {"content-type": "application/x-ndjson"}, end=False)
    sent = 0
    while (room := agent.sendable(sid)) > 0:
        agent.send_body(sid, b"x" * room)
        sent += room
    assert sent == 65_535  # the relay's default initial window: nothing more may go
    received = [
        e for e in relay.receive_data(agent.outgoing()) if isinstance(e, h2.events.DataReceived)
    ]
    relay.acknowledge_received_data(sum(e.flow_controlled_length for e in received), sid)
    events = exchange(relay, agent)
    assert any(isinstance(e, ev.WindowOpened) and sid in e.stream_ids for e in events)
    assert agent.sendable(sid) > 0


def test_reset_goaway_and_ping() -> None:
    """RST_STREAM is StreamCancelled, GOAWAY is Draining, a PING ack carries its payload."""
    relay, agent = pair()
    sid = request(relay)
    exchange(relay, agent)
    relay.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    assert ev.StreamCancelled(sid) in exchange(relay, agent)
    agent.ping(b"12345678")
    assert ev.PingAcknowledged(b"12345678") in exchange(relay, agent)
    relay.close_connection()
    assert ev.Draining() in exchange(relay, agent)


def test_refused_streams_are_marked_for_retry() -> None:
    """A stream refused while draining reaches the relay as REFUSED_STREAM (safe to retry)."""
    relay, agent = pair()
    sid = request(relay)
    exchange(relay, agent)
    agent.refuse(sid)
    events = relay.receive_data(agent.outgoing())
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert resets[0].error_code == h2.errors.ErrorCodes.REFUSED_STREAM


def test_a_malformed_request_fails_only_its_own_stream() -> None:
    """A header block breaking HTTP/2's rules resets its stream (PROTOCOL_ERROR); the
    connection and a well-formed request after it carry on."""
    lax = h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    relay = h2.connection.H2Connection(lax)
    agent = ServerSession()
    relay.initiate_connection()
    agent.start()
    exchange(relay, agent)
    bad = relay.get_next_available_stream_id()
    relay.send_headers(
        bad,
        [(":method", "GET"), (":path", "/v1/t"), (":scheme", "https"), ("x-id", "a\r\nb: c")],
        end_stream=True,
    )
    good = request(relay)
    events = agent.receive(relay.data_to_send())
    assert isinstance(events[0], ev.RequestRejected)
    assert events[0].stream_id == bad
    assert "control character" in events[0].reason
    assert any(isinstance(e, ev.RequestReceived) and e.stream_id == good for e in events)
    resets = [
        e for e in relay.receive_data(agent.outgoing()) if isinstance(e, h2.events.StreamReset)
    ]
    assert [(r.stream_id, r.error_code) for r in resets] == [
        (bad, h2.errors.ErrorCodes.PROTOCOL_ERROR)
    ]


def test_header_bytes_that_are_not_utf8_survive_the_trip() -> None:
    """Header values are carried byte for byte, whatever their encoding."""
    relay, agent = pair()
    sid = relay.get_next_available_stream_id()
    relay.send_headers(
        sid,
        [
            (b":method", b"GET"),
            (b":path", b"/v1/t"),
            (b":scheme", b"https"),
            (b":authority", b"a"),
            (b"x-name", b"caf\xe9"),
        ],
        end_stream=True,
    )
    received = [e for e in exchange(relay, agent) if isinstance(e, ev.RequestReceived)]
    value = received[0].headers["x-name"]
    assert value.encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_the_relay_may_open_as_many_streams_as_the_agent_allows() -> None:
    """The agent's first SETTINGS allow `max_streams` concurrent streams, not h2's implicit
    100: 150 requests open at once all arrive; one more than the limit breaks h2's rule."""
    relay = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    agent = ServerSession(max_streams=150)
    relay.initiate_connection()
    agent.start()
    exchange(relay, agent)
    assert relay.remote_settings.max_concurrent_streams == 150
    sids = [request(relay) for _ in range(150)]
    received = [e.stream_id for e in exchange(relay, agent) if isinstance(e, ev.RequestReceived)]
    assert received == sids
    with pytest.raises(h2.exceptions.TooManyStreamsError):
        request(relay)
