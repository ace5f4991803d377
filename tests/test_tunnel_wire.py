# The tunnel's header rules without sockets: which header blocks are refused, how headers are
# coded (bytes, never-indexed credentials and per-request values), and that a whole block
# round-trips through HPACK without Huffman coding.
from __future__ import annotations

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple

from bridgehead.common.tunnel import wire

REQUEST = [(":method", "GET"), (":path", "/v1/t/1"), (":scheme", "https"), (":authority", "a")]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ([("X-Upper", "v")], "not a lower-case token"),
        ([("bad name", "v")], "not a lower-case token"),
        ([("x", "a\nb")], "control character"),
        ([("x", "a\x00b")], "control character"),
        ([("x", " padded")], "white space"),
        ([("connection", "close")], "connection-specific"),
        ([("transfer-encoding", "chunked")], "connection-specific"),
        ([("te", "gzip")], "connection-specific"),
        ([(":status", "200")], "unknown"),
        ([(":path", "/v1/t/2")], "more than once"),
        ([("authorization", "Bearer a"), ("authorization", "Bearer b")], "more than once"),
    ],
)
def test_header_blocks_breaking_the_rules_are_named(
    extra: list[tuple[str, str]], reason: str
) -> None:
    """Each broken rule is reported with what was wrong."""
    problem = wire.header_problem([*REQUEST, *extra], wire.REQUEST_PSEUDO, wire.REQUEST_NEEDS)
    assert problem is not None
    assert reason in problem


def test_well_formed_blocks_pass() -> None:
    """Ordinary request and response blocks (te: trailers included) have no problem."""
    request = [*REQUEST, ("authorization", "Bearer k"), ("te", "trailers"), ("accept", "*/*")]
    assert wire.header_problem(request, wire.REQUEST_PSEUDO, wire.REQUEST_NEEDS) is None
    response = [(":status", "200"), ("content-type", "application/json")]
    assert wire.header_problem(response, wire.RESPONSE_PSEUDO, wire.RESPONSE_NEEDS) is None


def test_missing_pseudo_headers_are_named() -> None:
    """A request needs :method, :path and :scheme; a response needs :status."""
    problem = wire.header_problem([(":method", "GET")], wire.REQUEST_PSEUDO, wire.REQUEST_NEEDS)
    assert problem == "header block lacks :path, :scheme"
    assert (
        wire.header_problem([("a", "b")], wire.RESPONSE_PSEUDO, wire.RESPONSE_NEEDS)
        == "header block lacks :status"
    )


def test_only_stable_headers_are_indexed() -> None:
    """Paths, credentials, request ids and custom headers (which may carry secrets) are
    never indexed; stable headers such as accept may be."""
    block = wire.encode([*REQUEST, ("authorization", "Bearer k"), ("x-request-id", "r1"),
                         ("x-api-key", "s3cret"), ("accept", "*/*")])  # fmt: skip
    never = {bytes(h[0]) for h in block if isinstance(h, NeverIndexedHeaderTuple)}
    assert never == {b":path", b"authorization", b"x-request-id", b"x-api-key"}


def test_a_block_round_trips_without_huffman_and_adds_no_secrets_to_the_table() -> None:
    """What PlainEncoder writes decodes to the same headers; a credential sent twice is
    written out in full both times (it never enters the dynamic table)."""
    encoder, decoder = wire.PlainEncoder(), hpack.Decoder()
    fields = [*REQUEST, ("authorization", "Bearer secret-token"), ("accept", "*/*")]
    first = encoder.encode(wire.encode(fields))
    second = encoder.encode(wire.encode(fields))
    assert b"secret-token" in first
    assert b"secret-token" in second
    assert wire.decode(decoder.decode(first, raw=True)) == fields
    assert wire.decode(decoder.decode(second, raw=True)) == fields
    assert b"*/*" not in second  # an ordinary header is indexed the second time


def test_pseudo_headers_come_first() -> None:
    """A pseudo-header after a regular header is refused."""
    block = [(":method", "GET"), ("accept", "*/*"), (":path", "/v1/t"), (":scheme", "https")]
    problem = wire.header_problem(block, wire.REQUEST_PSEUDO, wire.REQUEST_NEEDS)
    assert problem is not None
    assert "after a regular header" in problem


def test_a_response_with_two_status_fields_is_refused() -> None:
    """Two :status fields (which h2 and a dict would read differently) are refused."""
    problem = wire.header_problem(
        [(":status", "200"), (":status", "100")], wire.RESPONSE_PSEUDO, wire.RESPONSE_NEEDS
    )
    assert problem == "header ':status' appears more than once"
