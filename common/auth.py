"""Bearer credentials both ends check: the `Authorization: Bearer <token>` header (or 401 with
a challenge), and the constant-time lookup of a token's digest among configured ones.

Rules: `find_by_digest` compares the given digest with every entry, without stopping at a
match, so the time taken never says which entry (or whether any) came close. No I/O here.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import TypeVar

from bridgehead.common.errors import Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bridgehead"'}
T = TypeVar("T")


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send Authorization: Bearer <api key or token>", headers=dict(_CHALLENGE)
        )
    return token.strip()


def find_by_digest(given: bytes, entries: Iterable[tuple[bytes, T]]) -> T | None:
    """The value of the first entry whose digest is `given`, or None; every entry is compared
    (`hmac.compare_digest`), matched or not, so the lookup takes the same time either way."""
    found: T | None = None
    matched = False
    for expected, value in entries:
        if hmac.compare_digest(given, expected) and not matched:
            found, matched = value, True
    return found
