"""The X-Request-Id rule both ends apply, so one request has one id at the relay, in the
agent's answer and in the agent's audit record.

Rules: a caller's id is kept when it is 1 to MAX_LENGTH printable ASCII characters. None
sent: a fresh one (24 hex digits) is made, from a generator seeded from the OS once: ids
must not repeat, and need not be secret (they are printed in answers and logs). One sent
that breaks the rule: a fresh one is made and the request is refused with a 400 problem
carrying the fresh id, so the caller learns its id was not used (never silently replaced).
No I/O here.

`bound(id)` makes an id the current request's for the code it wraps (a contextvar, so each
task and the threads it hands work to see their own); `common.logs` adds it to every line.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bridgehead.common.errors import BadRequest

MAX_LENGTH = 128
HEADER = "x-request-id"
CURRENT: ContextVar[str | None] = ContextVar("bridgehead_request_id", default=None)
_IDS = random.Random(os.urandom(32))  # noqa: S311 - unique ids, not secrets
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=lambda: _IDS.seed(os.urandom(32)))
"""The id of the request the running code serves, None outside a request."""


@contextmanager
def bound(request_id: str) -> Iterator[str]:
    """`request_id` is the current request's until the block ends."""
    token = CURRENT.set(request_id)
    try:
        yield request_id
    finally:
        CURRENT.reset(token)


def new_request_id() -> str:
    return f"{_IDS.getrandbits(96):024x}"


def is_valid(value: str) -> bool:
    """Whether a caller's id keeps the rule (1 to MAX_LENGTH printable ASCII characters)."""
    return 0 < len(value) <= MAX_LENGTH and value.isascii() and value.isprintable()


def request_id(given: str | None) -> tuple[str, BadRequest | None]:
    """The id a request goes by, and the refusal to answer when the caller's breaks the rule."""
    if given is None:
        return new_request_id(), None
    if is_valid(given):
        return given, None
    return new_request_id(), BadRequest(
        f"X-Request-Id must be 1 to {MAX_LENGTH} printable ASCII characters; "
        "send a shorter one (e.g. a UUID) or none, and one is made for the request"
    )
