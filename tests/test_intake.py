# agent.api.intake and common.requestid without sockets: the one translation of a request
# both fronts use, and the X-Request-Id rule the relay applies too.
from __future__ import annotations

import pytest

from bridgehead.agent.api.intake import Intake, Peer
from bridgehead.agent.errors import PayloadTooLarge, RequestTimeout
from bridgehead.common.errors import BadRequest
from bridgehead.common.requestid import is_valid, request_id

FIELDS = [
    ("Authorization", "Bearer k"),
    ("Accept", "a/b"),
    ("accept", "c/d"),
    ("X-Request-Id", "r"),
]


def test_both_peers_get_the_same_request() -> None:
    """The same method, target, headers and body make the same request on either front,
    but for `via` and `remote`: names lower-cased, repeats joined, the query parsed once."""
    made = []
    for peer in (Peer("local", "10.0.0.1"), Peer("relay")):
        intake = Intake("POST", "/v1/t%2Fx?a=1&b=&a=2+3", FIELDS, peer, 100)
        intake.add(b'{"x":')
        intake.add(b"1}")
        made.append(intake.finish())
    (local, no_refusal), (relayed, none_either) = made
    assert no_refusal is none_either is None
    assert local.path == "/v1/t%2Fx"
    assert local.query == (("a", "1"), ("b", ""), ("a", "2 3"))
    assert local.headers == {"authorization": "Bearer k", "accept": "a/b, c/d", "x-request-id": "r"}
    assert (local.body, local.request_id) == (b'{"x":1}', "r")
    assert (local.via, local.remote, relayed.via, relayed.remote) == (
        "local",
        "10.0.0.1",
        "relay",
        "",
    )
    assert (relayed.path, relayed.query, relayed.headers, relayed.body) == (
        local.path, local.query, local.headers, local.body,
    )  # fmt: skip


def test_a_body_past_the_limit_is_dropped_and_refused() -> None:
    """Past max_body the pieces are dropped, no more are kept, and the refusal is the 413."""
    intake = Intake("POST", "/v1/t", [], Peer("relay"), 4)
    intake.add(b"abc")
    intake.add(b"de")
    intake.add(b"f")
    request, refusal = intake.finish()
    assert request.body == b""
    assert isinstance(refusal, PayloadTooLarge)
    assert refusal.detail == "the request body is larger than 4 bytes"
    assert not intake.wants_body


def test_a_repeated_header_wins_over_the_other_refusals() -> None:
    """A repeated singleton is the refusal even with a body too large and a bad request id;
    the front's own (a stalled body) comes next, a broken id last."""
    repeated = Intake("GET", "/", [("If-Match", "a"), ("If-Match", "b")], Peer("local"), 1)
    repeated.declare(10)
    assert isinstance(repeated.finish()[1], BadRequest)
    stalled = Intake("GET", "/", [("X-Request-Id", "\t")], Peer("local"), 1)
    stalled.refuse(RequestTimeout("stalled"))
    assert isinstance(stalled.finish()[1], RequestTimeout)
    bad_id = Intake("GET", "/", [("X-Request-Id", "\t")], Peer("local"), 1)
    request, refusal = bad_id.finish()
    assert isinstance(refusal, BadRequest)
    assert request.request_id != "\t"


@pytest.mark.parametrize(
    ("given", "valid"),
    [("a", True), ("y" * 128, True), ("urn:uuid:1-2 3", True), ("", False), ("y" * 129, False),
     ("tab\t", False), ("é", False), ("nul\x00", False)],
)  # fmt: skip
def test_the_request_id_rule(given: str, valid: bool) -> None:
    """1 to 128 printable ASCII characters are kept; anything else is replaced by a fresh id
    (24 hex digits) and refused with a 400."""
    assert is_valid(given) is valid
    made, refusal = request_id(given)
    assert (made == given) is valid
    assert (refusal is None) is valid
    if not valid:
        assert len(made) == 24
        assert int(made, 16) >= 0


def test_no_request_id_gets_a_fresh_one_each_time() -> None:
    """Without an X-Request-Id each request gets a new id, and no refusal."""
    (one, none), (other, _) = request_id(None), request_id(None)
    assert none is None
    assert one != other
