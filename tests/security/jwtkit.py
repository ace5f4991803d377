# A signing key, its JWKS file and tokens for the agents the security tests start.
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://login.example.com/"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_jwks(path: Path, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Write the key's JWKS file; the `auth.jwt` config section that trusts it."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    return {"issuer": ISSUER, "audience": "bridgehead", "jwks_file": str(path)}


def token(key: rsa.RSAPrivateKey, sub: str, scope: str) -> str:
    body = {"iss": ISSUER, "aud": "bridgehead", "sub": sub, "scope": scope,
            "exp": int(time.time()) + 300}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})
