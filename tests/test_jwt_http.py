# JWT bearer tokens through the real HTTP API: a valid token from the configured issuer
# reads with the scopes in its claim; expired, wrong-audience, wrong-key and `alg: none`
# tokens are 401 with a reason; API keys keep working beside JWTs.
from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import Caller
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://login.example.com/"


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'one')")
    db.close()


def write_jwks(path: Path, key: rsa.RSAPrivateKey) -> None:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}))


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": "bridgehead", "sub": "svc-crm", "scope": "t:read",
            "exp": int(time.time()) + 300, **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
async def api(tmp_path: Path, run_agent: Any, signing_key: rsa.RSAPrivateKey) -> Caller:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    await asyncio.to_thread(write_jwks, tmp_path / "jwks.json", signing_key)
    auth_jwt = {
        "issuer": ISSUER,
        "audience": "bridgehead",
        "jwks_file": str(tmp_path / "jwks.json"),
    }
    caller: Caller = await run_agent(
        {"db": {"sqlite": str(tmp_path / "t.db")}},
        {"t": {"source": "db", "table": "t"}},
        auth_jwt=auth_jwt,
    )
    return caller


async def test_valid_token_reads(api: Caller, signing_key: rsa.RSAPrivateKey) -> None:
    """A token signed by the JWKS key, for this audience, with t:read, reads the resource."""
    status, _, body = await api.get("/v1/t", key=token(signing_key))
    assert status == 200, body
    assert body["items"] == [{"id": 1, "name": "one"}]


async def test_token_without_the_scope_is_403(api: Caller, signing_key: rsa.RSAPrivateKey) -> None:
    """A valid token whose scope claim lacks t:read is refused with 403."""
    status, _, body = await api.get("/v1/t", key=token(signing_key, scope="other:read"))
    assert status == 403
    assert body["detail"] == "svc-crm lacks the scope 't:read'; grant it in auth"


def _alg_none() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": ISSUER, "aud": "bridgehead", "sub": "x", "scope": "t:read",
              "exp": int(time.time()) + 300}  # fmt: skip
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_bad_tokens_are_401(api: Caller, signing_key: rsa.RSAPrivateKey) -> None:
    """Expired, wrong audience, another key, and alg none: each 401 with invalid_token."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "expired": token(signing_key, exp=int(time.time()) - 3600),
        "audience": token(signing_key, aud="someone-else"),
        "key": token(stranger),
        "none": _alg_none(),
    }
    for why, value in bad.items():
        status, headers, body = await api.get("/v1/t", key=value)
        assert status == 401, (why, body)
        assert "invalid_token" in headers["WWW-Authenticate"], why


async def test_api_keys_still_work_beside_jwt(api: Caller) -> None:
    """With JWT configured, an API key still authenticates as before."""
    status, _, _ = await api.get("/v1/t")
    assert status == 200
