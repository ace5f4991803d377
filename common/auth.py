"""Bearer-token parsing: the `Authorization: Bearer <token>` header, or 401 with a challenge."""

from __future__ import annotations

from collections.abc import Mapping

from bridgehead.common.errors import Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bridgehead"'}


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send Authorization: Bearer <api key or token>", headers=dict(_CHALLENGE)
        )
    return token.strip()
