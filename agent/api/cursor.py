"""Keyset cursors: opaque to callers, tamper-evident, tied to the query that made them.

A cursor carries the last row's values of the ordering columns and a digest of the query's
shape (resource, filters, order), signed with the agent's HMAC key. A cursor that was
edited, made by another agent, or used with a different filter or order is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Sequence
from typing import Any

import orjson

from bridgehead.agent.values import dumps
from bridgehead.common.errors import BadRequest

_TAG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def shape_digest(resource: str, filters: Sequence[tuple[str, str]], order: str) -> str:
    canonical = orjson.dumps([resource, sorted(filters), order])
    return _b64(hashlib.sha256(canonical).digest()[:12])


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the cursor key must be at least 16 bytes")
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, shape: str, values: Sequence[Any]) -> str:
        """A cursor after a row whose ordering columns hold `values`, as the driver gave them."""
        payload = dumps({"s": shape, "v": [_tagged(v) for v in values]})
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def decode(self, token: str, shape: str) -> list[Any]:
        """The values in the cursor; BadRequest if it is forged or belongs to another query."""
        body, _, tag = token.partition(".")
        try:
            payload, claimed = _unb64(body), _unb64(tag)
        except ValueError:
            raise _invalid() from None
        if not hmac.compare_digest(self._tag(payload), claimed):
            raise _invalid()
        data = orjson.loads(payload)
        if data.get("s") != shape:
            raise BadRequest(
                "cursor belongs to a different filter or order; repeat the request that "
                "returned it with the same filters and order, or start again without cursor"
            )
        return [_untagged(v) for v in data["v"]]


def _tagged(value: Any) -> Any:
    """Values JSON cannot carry as themselves (bytes, non-finite floats) as tagged objects."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": _b64(bytes(value))}
    if isinstance(value, float) and not math.isfinite(value):
        return {"f": repr(value)}
    return value


def _untagged(value: Any) -> Any:
    if isinstance(value, dict):
        if "b" in value:
            return _unb64(value["b"])
        return float(value["f"])
    return value


def _invalid() -> BadRequest:
    return BadRequest(
        "cursor is not valid: it was altered or issued by another agent; start again without cursor"
    )
