"""Enrollment: the one-time token an operator hands to an agent, and the exchange that turns
it into the agent's certificate without the private key ever leaving the agent.

The token, `bhe1.` and base64url JSON, carries where to enroll (`relay`, HOST:PORT), the
SHA-256 of the agents' CA certificate (`ca`), the token's id and secret, and the agent id and
group it is bound to. Nothing in it is trusted on first use: the agent checks that the relay
presents that CA and a server certificate the CA issued *before* it sends the secret.

The exchange runs over TLS with ALPN `ENROLL_ALPN` on the relay's agent port, one JSON object
per line, each at most `MAX_LINE` bytes:
  relay → agent  {"ca": PEM}
  agent → relay  {"token": ID, "secret": S, "csr": PEM}
  relay → agent  {"certificate": PEM, "agent": ID, "group": G} or {"error": SENTENCE}
Renewal needs no token: it runs over the agent's tunnel connection (agent.tunnel.renewal,
relay.renewal).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from bridgehead.certs.pki import check_name

ENROLL_ALPN = "bridgehead-enroll/1"
TOKEN_PREFIX = "bhe1."  # noqa: S105 - the format marker, not a secret
MAX_LINE = 64 * 1024
NOT_ONE = "is not a Bridgehead enrollment token; copy the whole line `token create` printed"


@dataclass(frozen=True)
class EnrollmentToken:
    relay: str
    """HOST:PORT of the relay's agent port, where the agent enrolls."""
    ca: str
    """SHA-256 of the agents' CA certificate (DER), in hex."""
    id: str
    secret: str
    agent: str
    group: str | None = None

    def encode(self) -> str:
        payload = orjson.dumps(asdict(self))
        return TOKEN_PREFIX + base64.urlsafe_b64encode(payload).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> EnrollmentToken:
        """The token in `text`; ValueError saying it is not one."""
        body = text.strip().removeprefix(TOKEN_PREFIX)
        if not text.strip().startswith(TOKEN_PREFIX):
            raise ValueError(f"the token {NOT_ONE}")
        try:
            fields = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            token = cls(**fields)
            check_name("agent id", token.agent)
            if token.group is not None:
                check_name("group", token.group)
        except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError):
            raise ValueError(f"the token {NOT_ONE}") from None
        return token


def ca_fingerprint(ca_pem: bytes) -> str:
    """The SHA-256 of a CA certificate's DER form, in hex: what a token pins."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_relay(ca_pem: bytes, server_der: bytes, token: EnrollmentToken, now: datetime) -> None:
    """Refuse (ValueError, one sentence) unless the relay offered the CA the token pins and
    its TLS certificate, which the handshake proved it holds, was issued by that CA and is
    valid now."""
    try:
        offered = ca_fingerprint(ca_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        server = x509.load_der_x509_certificate(server_der)
    except ValueError:
        raise ValueError(f"the relay at {token.relay} sent no valid certificates") from None
    if offered != token.ca:
        raise ValueError(
            f"the relay at {token.relay} is not the one that made this token: its CA's "
            f"fingerprint is {offered[:16]}..., the token expects {token.ca[:16]}...; check "
            "the address, or ask for a token from the right relay"
        )
    try:
        server.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError(
            f"the relay at {token.relay} presents a certificate its CA did not issue; "
            "something between this agent and the relay is intercepting TLS"
        ) from None
    if not server.not_valid_before_utc <= now <= server.not_valid_after_utc:
        raise ValueError(f"the relay at {token.relay} presents an expired certificate")


def line(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


def parse_line(data: bytes) -> dict[str, Any]:
    """One exchange message; ValueError if it is not a JSON object."""
    if not data:
        raise ValueError("the relay closed the connection without an answer; its log says why")
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("the enrollment message is not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("the enrollment message is not a JSON object")
    return message
