"""Who is calling, and may they: API keys (SHA-256 in config, constant-time match) and scopes.

A key's digest is compared against every configured one (`common.auth.find_by_digest`),
without an early exit, so response time does not reveal which key (or whether any) came close.

A principal's `qualified_name` says how it authenticated (`key:NAME`, `jwt:ISSUER#SUB`): it
is what the audit log, the rate limiter and the idempotency store know a caller by, so a JWT
subject can never pass for an API key of the same name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bridgehead.agent.config.model import ApiKeyConfig
from bridgehead.agent.errors import Forbidden
from bridgehead.common.auth import _CHALLENGE, bearer_token, find_by_digest
from bridgehead.common.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    name: str
    """As configured (an API key's name) or as the token names it (its `sub`): for messages."""
    scopes: frozenset[str]
    qualified_name: str
    """`key:NAME` or `jwt:ISSUER#SUB`: who the caller is, for audit, rate and idempotency."""

    @classmethod
    def api_key(cls, name: str, scopes: frozenset[str]) -> Principal:
        return cls(name, scopes, f"key:{name}")

    @classmethod
    def jwt(cls, issuer: str, subject: str, scopes: frozenset[str]) -> Principal:
        return cls(subject, scopes, f"jwt:{issuer}#{subject}")

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"{self.name} lacks the scope {scope!r}; grant it in auth")


class ApiKeys:
    def __init__(self, keys: tuple[ApiKeyConfig, ...]) -> None:
        self._keys = [
            (bytes.fromhex(k.key_sha256), Principal.api_key(k.name, frozenset(k.scopes)))
            for k in keys
        ]

    def authenticate(self, token: str) -> Principal | None:
        return find_by_digest(hashlib.sha256(token.encode("utf-8")).digest(), self._keys)


class TokenVerifier(Protocol):
    """A bearer-token scheme: None when the token is not its kind, Unauthorized when invalid."""

    def authenticate(self, token: str) -> Principal | None: ...


class Authenticator:
    """Tries each configured scheme in turn (JWT first, then API keys); 401 when none accepts."""

    def __init__(self, api_keys: ApiKeys, jwt: TokenVerifier | None = None) -> None:
        self._api_keys = api_keys
        self._jwt = jwt

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = bearer_token(headers)
        if self._jwt is not None:
            principal = self._jwt.authenticate(token)
            if principal is not None:
                return principal
        principal = self._api_keys.authenticate(token)
        if principal is None:
            raise Unauthorized("the bearer token is not a known API key", headers=dict(_CHALLENGE))
        return principal
