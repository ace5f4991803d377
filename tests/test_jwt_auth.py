"""JWT bearer tokens: real RSA, EC and Ed25519 keys, tokens signed by PyJWT, a fake clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from bridgehead.agent.api.auth import Principal
from bridgehead.agent.api.jwt_auth import JwtVerifier
from bridgehead.agent.config.model import JwtConfig
from bridgehead.common.errors import Unauthorized

NOW = 1_700_000_000.0
ISSUER = "https://login.example.com/"
AUDIENCE = "bridgehead"
CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def jwks(
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> dict[str, Any]:
    return {
        "keys": [
            {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "kid": "rsa"},
            {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec"},
            {**OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True), "kid": "ed"},
        ]
    }


def config(path: Path = Path("jwks.json"), **changes: Any) -> JwtConfig:
    return JwtConfig(issuer=ISSUER, audience=AUDIENCE, jwks_file=path, **changes)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(jwks: dict[str, Any], clock: FakeClock) -> JwtVerifier:
    return JwtVerifier(config(), jwks, clock=clock)


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-reporting",
        "iat": NOW - 60,
        "exp": NOW + 300,
        "scope": "customers:read queries:overdue",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: Any, alg: str, kid: str | None, **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rejection(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        verifier.authenticate(token)
    assert caught.value.headers == CHALLENGE
    assert caught.value.status == 401
    return caught.value.detail


# --- valid tokens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_fixture", "alg", "kid"),
    [
        ("rsa_key", "RS256", "rsa"),
        ("rsa_key", "RS512", "rsa"),
        ("rsa_key", "PS256", "rsa"),
        ("ec_key", "ES256", "ec"),
        ("ed_key", "EdDSA", "ed"),
    ],
)
def test_valid_token_names_subject_and_space_separated_scopes(
    verifier: JwtVerifier, request: pytest.FixtureRequest, key_fixture: str, alg: str, kid: str
) -> None:
    """A token signed with a JWKS key by an allowed algorithm yields its sub and `scope` words."""
    token = sign(request.getfixturevalue(key_fixture), alg, kid)
    assert verifier.authenticate(token) == Principal.jwt(
        ISSUER, "svc-reporting", frozenset({"customers:read", "queries:overdue"})
    )


def test_scopes_from_a_list_claim(jwks: dict[str, Any], ec_key: Any, clock: FakeClock) -> None:
    """With `scopes_claim: scp`, a JSON list of scopes is read as the principal's scopes."""
    verifier = JwtVerifier(config(scopes_claim="scp"), jwks, clock=clock)
    token = sign(ec_key, "ES256", "ec", scope=None, scp=["customers:read", "customers:write"])
    principal = verifier.authenticate(token)
    assert principal is not None
    assert principal.scopes == {"customers:read", "customers:write"}


def test_missing_scopes_claim_means_no_scopes(verifier: JwtVerifier, ed_key: Any) -> None:
    """A valid token without the scopes claim authenticates with no scopes (403s come later)."""
    principal = verifier.authenticate(sign(ed_key, "EdDSA", "ed", scope=None))
    assert principal == Principal.jwt(ISSUER, "svc-reporting", frozenset())


def test_scopes_claim_of_another_type_is_rejected(verifier: JwtVerifier, ed_key: Any) -> None:
    """A scopes claim that is neither a string nor a list of strings makes the token invalid."""
    detail = rejection(verifier, sign(ed_key, "EdDSA", "ed", scope={"a": 1}))
    assert detail == "the token's 'scope' claim is neither a space-separated string nor a list"


def test_name_falls_back_to_client_id_then_azp(verifier: JwtVerifier, ed_key: Any) -> None:
    """Without `sub` the principal is named by `client_id`, then by `azp`; with none, 401."""
    by_client = verifier.authenticate(sign(ed_key, "EdDSA", "ed", sub=None, client_id="crm"))
    by_azp = verifier.authenticate(sign(ed_key, "EdDSA", "ed", sub=None, azp="portal"))
    assert by_client is not None
    assert by_client.name == "crm"
    assert by_azp is not None
    assert by_azp.name == "portal"
    detail = rejection(verifier, sign(ed_key, "EdDSA", "ed", sub=None))
    assert detail == "the token names no caller: it has no sub, client_id or azp claim"


def test_audience_may_be_one_of_a_list(verifier: JwtVerifier, rsa_key: Any) -> None:
    """An `aud` list that contains the configured audience is accepted."""
    token = sign(rsa_key, "RS256", "rsa", aud=["other-api", AUDIENCE])
    assert verifier.authenticate(token) is not None


def test_only_key_is_used_when_token_has_no_kid(ed_key: Any, clock: FakeClock) -> None:
    """With a single key in the set, a token without `kid` is verified with that key."""
    single = {"keys": [OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True)]}
    verifier = JwtVerifier(config(), single, clock=clock)
    assert verifier.authenticate(sign(ed_key, "EdDSA", None)) is not None


def test_missing_kid_with_several_keys_is_rejected(verifier: JwtVerifier, ed_key: Any) -> None:
    """With several keys in the set, a token without `kid` cannot pick one and is refused."""
    detail = rejection(verifier, sign(ed_key, "EdDSA", None))
    assert detail == "the token names no key (kid) and the JWKS file holds several keys"


def test_alg_pinned_by_the_jwk_restricts_the_key(rsa_key: Any, clock: FakeClock) -> None:
    """An RSA JWK that says `alg: RS256` verifies RS256 tokens only, not RS512 ones."""
    pinned = {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "alg": "RS256"}
    verifier = JwtVerifier(config(), {"keys": [pinned]}, clock=clock)
    assert verifier.authenticate(sign(rsa_key, "RS256", None)) is not None
    detail = rejection(verifier, sign(rsa_key, "RS512", None))
    assert detail == "the token's signing algorithm does not match its key"


# --- time --------------------------------------------------------------------------------


def test_expired_within_leeway_passes(verifier: JwtVerifier, rsa_key: Any) -> None:
    """A token that expired 10 s ago still passes with the default 30 s leeway."""
    assert verifier.authenticate(sign(rsa_key, "RS256", "rsa", exp=NOW - 10)) is not None


def test_expired_beyond_leeway_fails(verifier: JwtVerifier, rsa_key: Any) -> None:
    """A token that expired 60 s ago is refused with the default 30 s leeway."""
    detail = rejection(verifier, sign(rsa_key, "RS256", "rsa", exp=NOW - 60))
    assert detail == "the token has expired"


def test_expiry_follows_the_injected_clock(
    verifier: JwtVerifier, rsa_key: Any, clock: FakeClock
) -> None:
    """The same token passes, then fails once the injected clock moves past exp + leeway."""
    token = sign(rsa_key, "RS256", "rsa", exp=NOW + 100)
    assert verifier.authenticate(token) is not None
    clock.now = NOW + 129
    assert verifier.authenticate(token) is not None
    clock.now = NOW + 131
    assert rejection(verifier, token) == "the token has expired"


def test_leeway_comes_from_config(jwks: dict[str, Any], rsa_key: Any, clock: FakeClock) -> None:
    """With `leeway: 5s`, a token that expired 10 s ago is refused."""
    verifier = JwtVerifier(config(leeway="5s"), jwks, clock=clock)
    assert rejection(verifier, sign(rsa_key, "RS256", "rsa", exp=NOW - 10)) == (
        "the token has expired"
    )


def test_not_before_in_the_future_fails(verifier: JwtVerifier, ec_key: Any) -> None:
    """A token whose nbf lies beyond now + leeway is not valid yet; within the leeway it is."""
    assert verifier.authenticate(sign(ec_key, "ES256", "ec", nbf=NOW + 20)) is not None
    detail = rejection(verifier, sign(ec_key, "ES256", "ec", nbf=NOW + 120))
    assert detail == "the token is not valid yet (its nbf is in the future)"


def test_issued_in_the_future_fails(verifier: JwtVerifier, ec_key: Any) -> None:
    """A token whose iat lies beyond now + leeway is refused."""
    detail = rejection(verifier, sign(ec_key, "ES256", "ec", iat=NOW + 120))
    assert detail == "the token was issued in the future (iat); check the issuer's clock"


@pytest.mark.parametrize("exp", ["soon", True, None])
def test_exp_must_be_a_number(verifier: JwtVerifier, ec_key: Any, exp: Any) -> None:
    """A missing or non-numeric exp is refused: tokens must expire."""
    detail = rejection(verifier, sign(ec_key, "ES256", "ec", exp=exp))
    assert detail in (
        "the token's exp claim is not a number of seconds since the epoch",
        "the token lacks the required 'exp' claim",
    )


# --- issuer, audience, keys, algorithms --------------------------------------------------


def test_wrong_issuer_fails(verifier: JwtVerifier, rsa_key: Any) -> None:
    """A token from another issuer is refused, naming the expected issuer."""
    detail = rejection(verifier, sign(rsa_key, "RS256", "rsa", iss="https://evil.example/"))
    assert detail == f"the token was not issued by {ISSUER}"


def test_wrong_audience_fails(verifier: JwtVerifier, rsa_key: Any) -> None:
    """A token meant for another audience is refused, naming the expected audience."""
    detail = rejection(verifier, sign(rsa_key, "RS256", "rsa", aud="billing"))
    assert detail == f"the token is not for the audience {AUDIENCE}"


@pytest.mark.parametrize("claim", ["iss", "aud"])
def test_issuer_and_audience_are_required(verifier: JwtVerifier, rsa_key: Any, claim: str) -> None:
    """A token without iss or aud is refused, naming the missing claim."""
    detail = rejection(verifier, sign(rsa_key, "RS256", "rsa", **{claim: None}))
    assert detail == f"the token lacks the required {claim!r} claim"


def test_signature_by_another_key_with_the_same_kid_fails(
    verifier: JwtVerifier, other_rsa_key: Any
) -> None:
    """A token signed by a different private key but claiming a trusted kid is refused."""
    detail = rejection(verifier, sign(other_rsa_key, "RS256", "rsa"))
    assert detail == "the token's signature does not verify with its key"


def test_tampered_payload_fails(verifier: JwtVerifier, rsa_key: Any) -> None:
    """Changing the payload of a signed token (more scopes) breaks its signature."""
    header, _, signature = sign(rsa_key, "RS256", "rsa").split(".")
    payload = b64url(json.dumps(claims(scope="everything")).encode())
    detail = rejection(verifier, f"{header}.{payload}.{signature}")
    assert detail == "the token's signature does not verify with its key"


def test_unknown_kid_fails(verifier: JwtVerifier, other_rsa_key: Any) -> None:
    """A token naming a kid that is not in the JWKS file is refused."""
    detail = rejection(verifier, sign(other_rsa_key, "RS256", "rotated-away"))
    assert detail == "the token's key (kid) is not in the JWKS file"


def test_algorithm_of_another_key_type_fails(verifier: JwtVerifier, ec_key: Any) -> None:
    """An ES256 token that names the RSA key's kid is refused before any verification."""
    detail = rejection(verifier, sign(ec_key, "ES256", "rsa"))
    assert detail == "the token's signing algorithm does not match its key"


def test_alg_none_is_rejected(verifier: JwtVerifier) -> None:
    """An unsigned token (`alg: none`, empty signature) is refused, kid or not."""
    payload = b64url(json.dumps(claims()).encode())
    for header in ({"alg": "none"}, {"alg": "none", "kid": "rsa"}, {"alg": "None"}):
        token = f"{b64url(json.dumps(header).encode())}.{payload}."
        detail = rejection(verifier, token)
        assert detail.startswith("the token's signing algorithm is not allowed; use one of RS256")


def test_hs256_with_the_public_key_as_secret_is_rejected(
    verifier: JwtVerifier, rsa_key: Any
) -> None:
    """An HS256 token whose HMAC secret is the RSA public key's PEM is refused."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "kid": "rsa", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    # PyJWT refuses to HMAC-sign with a PEM key, which is the point; sign it by hand.
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    detail = rejection(verifier, f"{header}.{payload}.{b64url(mac)}")
    assert detail.startswith("the token's signing algorithm is not allowed")


def test_jwe_compact_form_is_rejected(verifier: JwtVerifier) -> None:
    """A five-part (encrypted) token is a JWT but not a signed one, and is refused."""
    header = b64url(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM"}).encode())
    detail = rejection(verifier, f"{header}.a.b.c.d")
    assert detail == ("the token is not a signed JWT in compact form (header.payload.signature)")


def test_malformed_payload_is_rejected(verifier: JwtVerifier) -> None:
    """A JWT-looking token whose payload is not base64url JSON is refused, not ignored."""
    header = b64url(json.dumps({"alg": "RS256", "kid": "rsa"}).encode())
    detail = rejection(verifier, f"{header}.!!!.sig")
    assert detail == "the token is malformed: its parts cannot be decoded"


# --- not a JWT: let API keys try ---------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["s3cr3t-api-key", "Zm9v.YmFy.YmF6", "a.b.c", "", "eyJhbGciOiJSUzI1NiJ9", "ключ.x.y"],
)
def test_non_jwt_tokens_yield_none(verifier: JwtVerifier, token: str) -> None:
    """A token that is not a JWT (no base64url JSON header with `alg`) is left to API keys."""
    assert verifier.authenticate(token) is None


_FUZZ_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
_JWKS_FOR_FUZZ = {"keys": [{**ECAlgorithm.to_jwk(_FUZZ_KEY, as_dict=True), "kid": "k"}]}


@settings(max_examples=300, deadline=None)
@given(
    header=st.one_of(
        st.dictionaries(
            st.sampled_from(["alg", "kid", "typ", "crit", "b64"]),
            st.one_of(st.text(max_size=8), st.lists(st.integers(), max_size=2), st.booleans()),
        ),
        st.just({"alg": "ES256", "kid": "k"}),
    ),
    payload=st.binary(max_size=64),
    signature=st.binary(max_size=64),
)
def test_arbitrary_tokens_never_crash(
    header: dict[str, Any], payload: bytes, signature: bytes
) -> None:
    """Whatever the header, payload and signature, the answer is None, a principal or a 401."""
    verifier = JwtVerifier(config(), _JWKS_FOR_FUZZ, clock=FakeClock())
    token = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}.{b64url(signature)}"
    try:
        principal = verifier.authenticate(token)
    except Unauthorized as error:
        headers = error.headers
    else:
        assert principal is None or isinstance(principal, Principal)
        headers = CHALLENGE
    assert headers == CHALLENGE


# --- the JWKS file -----------------------------------------------------------------------


def test_from_file_reads_the_key_set(tmp_path: Path, jwks: dict[str, Any], ed_key: Any) -> None:
    """`from_file` loads the JWKS named in the config and verifies tokens with it."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks), encoding="utf-8")
    verifier = JwtVerifier.from_file(config(path), clock=FakeClock())
    assert verifier.key_ids == {"rsa", "ec", "ed"}
    assert verifier.authenticate(sign(ed_key, "EdDSA", "ed")) is not None


def test_missing_jwks_file_is_a_value_error(tmp_path: Path) -> None:
    """A JWKS file that does not exist gives one sentence naming it."""
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match="cannot read the JWKS file") as caught:
        JwtVerifier.from_file(config(path))
    assert str(caught.value) == f"cannot read the JWKS file {path}: No such file or directory"


def test_jwks_file_that_is_not_json_is_a_value_error(tmp_path: Path) -> None:
    """A JWKS file that is not JSON gives one sentence naming it and where parsing failed."""
    path = tmp_path / "jwks.json"
    path.write_text("keys:\n  - kty: RSA\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON") as caught:
        JwtVerifier.from_file(config(path))
    assert str(caught.value).startswith(f"the JWKS file {path} is not valid JSON (")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[]", 'is not a JSON Web Key Set (an object with a "keys" list)'),
        ('{"keys": {}}', 'is not a JSON Web Key Set (an object with a "keys" list)'),
        ('{"keys": []}', "holds no usable signing key (RSA, EC P-256/P-384 or Ed25519)"),
        ('{"keys": ["x"]}', "has a key that is not a JSON object"),
        (
            '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}',
            "holds secret key material (key without a kid)",
        ),
        ('{"keys": [{"kty": "RSA", "kid": "a", "e": "AQAB"}]}', "has an unreadable key 'a'"),
    ],
)
def test_unusable_jwks_content_is_a_value_error(tmp_path: Path, content: str, problem: str) -> None:
    """JWKS content that yields no trustworthy signing key is refused at start-up."""
    path = tmp_path / "jwks.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="JWKS file") as caught:
        JwtVerifier.from_file(config(path))
    assert str(caught.value).startswith(f"the JWKS file {path} {problem}")


def test_private_key_in_jwks_is_a_value_error(rsa_key: Any) -> None:
    """A JWKS holding a private key is refused: only public keys belong there."""
    private = {**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "k1"}
    with pytest.raises(ValueError, match=r"secret key material \(key 'k1'\)"):
        JwtVerifier(config(), {"keys": [private]})


def test_duplicate_kid_is_a_value_error(rsa_key: Any, other_rsa_key: Any) -> None:
    """Two signing keys with the same kid are ambiguous and refused."""
    keys = [
        {**RSAAlgorithm.to_jwk(k.public_key(), as_dict=True), "kid": "k1"}
        for k in (rsa_key, other_rsa_key)
    ]
    with pytest.raises(ValueError, match="two signing keys with the kid 'k1'"):
        JwtVerifier(config(), {"keys": keys})


def test_short_rsa_key_is_a_value_error() -> None:
    """An RSA key under 2048 bits is refused at start-up."""
    # A breakable key size is the point of this test.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    jwk = {**RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True), "kid": "weak"}
    with pytest.raises(ValueError, match="has an RSA key 'weak' shorter than 2048 bits"):
        JwtVerifier(config(), {"keys": [jwk]})


def test_encryption_and_unsupported_keys_are_set_aside(
    jwks: dict[str, Any], ed_key: Any, clock: FakeClock
) -> None:
    """`use: enc` keys are ignored; a P-521 signing key is kept out and its tokens refused."""
    p521 = ec.generate_private_key(ec.SECP521R1())
    extra = [
        {**ECAlgorithm.to_jwk(p521.public_key(), as_dict=True), "kid": "p521"},
        {**jwks["keys"][0], "kid": "enc", "use": "enc", "alg": "RSA-OAEP"},
    ]
    verifier = JwtVerifier(config(), {"keys": [*jwks["keys"], *extra]}, clock=clock)
    assert verifier.key_ids == {"rsa", "ec", "ed"}
    token = jwt.encode(claims(), p521, algorithm="ES512", headers={"kid": "p521"})
    assert rejection(verifier, token).startswith("the token's signing algorithm is not allowed")
    token = sign(ed_key, "EdDSA", "p521")
    assert rejection(verifier, token) == (
        "the token's key (kid) is of a type or algorithm this agent refuses"
    )
