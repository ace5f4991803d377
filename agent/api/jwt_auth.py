"""JWT bearer tokens from the cloud's identity provider (`auth.jwt` in agent.yaml).

Rules: the trusted keys come only from the JWKS file, read once at start; only asymmetric
algorithms are accepted, each key limited to those its type allows, so `alg: none` and HS256
signed with a public key can never pass. Signatures are PyJWT's; the time checks use the
injected clock, never the library's. A token that is not a JWT at all yields None (an API key
may match it); a JWT that fails any check raises Unauthorized with one sentence saying which.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.types import Options

from bridgehead.agent.api.auth import Principal
from bridgehead.agent.config.model import JwtConfig
from bridgehead.common.errors import Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}

# Which algorithms a key may verify, by (kty, crv). Asymmetric only; no HMAC, no "none".
_ALGORITHMS_BY_KEY_TYPE: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("RSA", None): ("RS256", "RS384", "RS512", "PS256"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
    ("OKP", "Ed25519"): ("EdDSA",),
}
ALLOWED_ALGORITHMS = tuple(alg for algs in _ALGORITHMS_BY_KEY_TYPE.values() for alg in algs)

# PyJWT verifies the signature, iss, aud and that exp/iss/aud are present; the times are
# checked against our clock in `JwtVerifier._check_times`.
_DECODE_OPTIONS: Options = {
    "require": ["exp", "iss", "aud"],
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True)
class TrustedKey:
    """A public key from the JWKS file and the algorithms it may verify."""

    key: Any  # a `cryptography` public key object, as PyJWK parsed it
    algorithms: tuple[str, ...]


def _invalid(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers=dict(_CHALLENGE))


class JwtVerifier:
    """Verifies bearer JWTs against one issuer, one audience and the keys of one JWKS file."""

    def __init__(
        self,
        config: JwtConfig,
        jwks: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._clock = clock
        self._keys, self._unsupported = _trusted_keys(jwks, config.jwks_file)

    @classmethod
    def from_file(cls, config: JwtConfig, *, clock: Callable[[], float] = time.time) -> JwtVerifier:
        """Read and check `config.jwks_file`; ValueError (one sentence) if it is unusable."""
        path = config.jwks_file
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"the JWKS file {path} is not UTF-8 text") from error
        except OSError as error:
            raise ValueError(f"cannot read the JWKS file {path}: {error.strerror}") from error
        try:
            jwks = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"the JWKS file {path} is not valid JSON ({error.msg} at line {error.lineno})"
            ) from error
        except RecursionError as error:
            raise ValueError(f"the JWKS file {path} is nested too deeply") from error
        if not isinstance(jwks, dict):
            raise ValueError(_not_a_key_set(path))
        return cls(config, jwks, clock=clock)

    @property
    def key_ids(self) -> frozenset[str | None]:
        """The kids of the usable signing keys (None for a key without one)."""
        return frozenset(self._keys)

    def authenticate(self, token: str) -> Principal | None:
        """The caller a valid JWT names; None if `token` is no JWT; Unauthorized if invalid."""
        header = _jose_header(token)
        if header is None:
            return None
        if token.count(".") != 2:
            raise _invalid(
                "the token is not a signed JWT in compact form (header.payload.signature)"
            )
        key = self._key_for(header)
        claims = self._verified_claims(token, key)
        self._check_times(claims)
        subject = _principal_name(claims)
        return Principal.jwt(self._config.issuer, subject, self._scopes(claims))

    def _key_for(self, header: Mapping[str, Any]) -> TrustedKey:
        alg = header["alg"]
        if alg not in ALLOWED_ALGORITHMS:
            raise _invalid(
                "the token's signing algorithm is not allowed; use one of "
                + ", ".join(ALLOWED_ALGORITHMS)
            )
        kid = header.get("kid")
        if kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        elif kid is None:
            raise _invalid("the token names no key (kid) and the JWKS file holds several keys")
        elif not isinstance(kid, str):
            raise _invalid("the token's kid header is not a string")
        elif kid in self._keys:
            key = self._keys[kid]
        elif kid in self._unsupported:
            raise _invalid("the token's key (kid) is of a type or algorithm this agent refuses")
        else:
            raise _invalid("the token's key (kid) is not in the JWKS file")
        if alg not in key.algorithms:
            raise _invalid("the token's signing algorithm does not match its key")
        return key

    def _verified_claims(self, token: str, key: TrustedKey) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key=key.key,
                algorithms=list(key.algorithms),
                audience=self._config.audience,
                issuer=self._config.issuer,
                options=_DECODE_OPTIONS,
            )
        except jwt.PyJWTError as error:
            raise _invalid(self._explain(error)) from error

    def _explain(self, error: jwt.PyJWTError) -> str:
        if isinstance(error, jwt.MissingRequiredClaimError):
            return f"the token lacks the required {error.claim!r} claim"
        explanations = (  # subclasses before their bases: InvalidSignatureError is a DecodeError
            (jwt.InvalidIssuerError, f"the token was not issued by {self._config.issuer}"),
            (
                jwt.InvalidAudienceError,
                f"the token is not for the audience {self._config.audience}",
            ),
            (jwt.InvalidSignatureError, "the token's signature does not verify with its key"),
            (jwt.InvalidAlgorithmError, "the token's signing algorithm does not match its key"),
            (jwt.DecodeError, "the token is malformed: its parts cannot be decoded"),
        )
        for kind, text in explanations:
            if isinstance(error, kind):
                return text
        return "the token is invalid (an unsupported header or a claim of the wrong type)"

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now, leeway = self._clock(), self._config.leeway
        exp = _numeric_date(claims, "exp")
        if exp is not None and exp <= now - leeway:
            raise _invalid("the token has expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise _invalid("the token is not valid yet (its nbf is in the future)")
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise _invalid("the token was issued in the future (iat); check the issuer's clock")

    def _scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        name = self._config.scopes_claim
        value = claims.get(name)
        if value is None:
            return frozenset()
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return frozenset(value)
        raise _invalid(f"the token's {name!r} claim is neither a space-separated string nor a list")


def _jose_header(token: str) -> dict[str, Any] | None:
    """The token's header if its first segment is base64url JSON with an `alg`, else None."""
    first, dot, _ = token.partition(".")
    if not dot:
        return None
    try:
        raw = base64.b64decode(first + "=" * (-len(first) % 4), altchars=b"-_", validate=True)
        header = json.loads(raw)
    except (ValueError, RecursionError):  # binascii and Unicode errors are ValueErrors
        return None
    return header if isinstance(header, dict) and "alg" in header else None


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"the token's {name} claim is not a number of seconds since the epoch")
    return float(value)


def _principal_name(claims: Mapping[str, Any]) -> str:
    for claim in ("sub", "client_id", "azp"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value
    raise _invalid("the token names no caller: it has no sub, client_id or azp claim")


def _not_a_key_set(path: Path) -> str:
    return f'the JWKS file {path} is not a JSON Web Key Set (an object with a "keys" list)'


def _trusted_keys(
    jwks: Mapping[str, Any], path: Path
) -> tuple[dict[str | None, TrustedKey], frozenset[str]]:
    """The usable signing keys by kid, and the kids of signing keys refused as unsupported."""
    members = jwks.get("keys")
    if not isinstance(members, list):
        raise ValueError(_not_a_key_set(path))
    keys: dict[str | None, TrustedKey] = {}
    unsupported: set[str] = set()
    for jwk in members:
        if not isinstance(jwk, dict):
            raise ValueError(f"the JWKS file {path} has a key that is not a JSON object")
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError(f"the JWKS file {path} has a key whose kid is not a string")
        if jwk.get("use", "sig") != "sig":
            continue  # encryption keys published alongside are none of our business
        trusted = _trusted_key(jwk, path, f"key {kid!r}" if kid else "key without a kid")
        if trusted is None:
            unsupported.update([kid] if kid else [])
        elif kid in keys:
            raise ValueError(f"the JWKS file {path} has two signing keys with the kid {kid!r}")
        else:
            keys[kid] = trusted
    if not keys:
        raise ValueError(
            f"the JWKS file {path} holds no usable signing key (RSA, EC P-256/P-384 or Ed25519)"
        )
    return keys, frozenset(unsupported - set(keys))


def _trusted_key(jwk: dict[str, Any], path: Path, label: str) -> TrustedKey | None:
    """The key and its algorithms; None when its type or `alg` is one we refuse."""
    if "d" in jwk or "k" in jwk:
        raise ValueError(
            f"the JWKS file {path} holds secret key material ({label}); publish only public keys"
        )
    algorithms = _algorithms_for(jwk)
    if algorithms is None:
        return None
    try:
        parsed = jwt.PyJWK(jwk, algorithm=algorithms[0])
    except (jwt.PyJWTError, LookupError, TypeError, ValueError) as error:
        raise ValueError(f"the JWKS file {path} has an unreadable {label} ({error})") from error
    if parsed.Algorithm.check_key_length(parsed.key) is not None:
        raise ValueError(f"the JWKS file {path} has an RSA {label} shorter than 2048 bits")
    return TrustedKey(parsed.key, algorithms)


def _algorithms_for(jwk: dict[str, Any]) -> tuple[str, ...] | None:
    """What this key may verify: by its type and curve, narrowed by its `alg` if it has one."""
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    algorithms = _ALGORITHMS_BY_KEY_TYPE.get((str(kty), None if crv is None else str(crv)))
    if algorithms is None or alg is None:
        return algorithms
    return (alg,) if alg in algorithms else None
