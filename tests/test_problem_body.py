# common.problem: the one RFC 9457 body and the media types the agent's pipeline, the agent's
# connection cap and the relay's own answers are all built from.
from __future__ import annotations

import orjson

from bridgehead.agent.api import problems
from bridgehead.agent.listener import overloaded
from bridgehead.common.problem import PROBLEM_JSON, problem_body, slug_of
from bridgehead.relay.callers import problem as relay_problem

EXPECTED = (
    b'{"type":"https://bridgehead.dev/problems/agent-busy","title":"Agent busy",'
    b'"status":503,"detail":"try later","request_id":"r-1"}'
)


def test_the_body_has_the_five_fields_in_order() -> None:
    """type, title, status, detail and request_id, compact, in that order."""
    assert problem_body(503, "Agent busy", "try later", "r-1", "agent-busy") == EXPECTED


def test_agent_and_relay_bodies_are_byte_identical() -> None:
    """The same problem built by the agent's pipeline and by the relay is the same bytes,
    with the same media type; the relay names its type after the title."""
    agent = problems.problem(503, "Agent busy", "try later", "r-1", slug_of("Agent busy"))
    relay = relay_problem(503, "Agent busy", "try later", "r-1")
    assert agent.body == relay.body == EXPECTED
    assert agent.headers["Content-Type"] == relay.content_type == PROBLEM_JSON
    assert relay.headers["X-Request-Id"] == "r-1"


def test_the_connection_cap_refusal_carries_a_problem_body() -> None:
    """The raw 503 written to a connection past the cap is a problem+json document of the
    same shape, its Content-Length that body's."""
    head, _, body = overloaded(3).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert f"Content-Type: {PROBLEM_JSON}".encode() in head
    assert f"Content-Length: {len(body)}".encode() in head
    document = orjson.loads(body)
    assert list(document) == ["type", "title", "status", "detail", "request_id"]
    assert document["type"] == "https://bridgehead.dev/problems/busy"
