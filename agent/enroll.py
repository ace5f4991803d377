"""`bridgehead enroll TOKEN -c agent.yaml`: get this agent's certificate from the relay.

Steps, and what a process killed at each leaves behind:
1. Make a new key pair here (EC P-256) and a CSR; the private key never leaves this process
   until step 4. Killed: nothing written.
2. Connect to the relay the token names (TLS, ALPN `ENROLL_ALPN`), take the CA it offers and
   refuse unless it is the CA the token pins and it issued the relay's TLS certificate; only
   then send the token's secret and the CSR. Killed: nothing written (the token may be spent).
3. Check the certificate that comes back: issued by that CA, for this key, naming the token's
   agent. A refusal, from the relay or here, is one sentence; nothing is written.
4. Write the CA, then the certificate and key together (`write_key_pair`: the old pair or the
   new, never half), then the `tunnel:` section of agent.yaml (a round-trip edit that keeps
   comments, replacing the file atomically). Killed between: the files are new but the
   config may still name the old ones (or none); running enroll again with a new token
   finishes the job.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from bridgehead.agent.config.edit import replace_config, with_section
from bridgehead.agent.config.load import open_with_state_key, parse_config
from bridgehead.certs.enrollment import (
    ENROLL_ALPN,
    MAX_LINE,
    EnrollmentToken,
    check_relay,
    line,
    parse_line,
)
from bridgehead.certs.keyfiles import write_public
from bridgehead.certs.pki import Identity, create_csr, write_key_pair
from bridgehead.common.config.base import HostPort
from bridgehead.common.config.document import ConfigError, read_text

TIMEOUT = 15.0


class EnrollRefused(Exception):
    """Enrollment did not happen; the message says why in one sentence."""


@dataclass(frozen=True)
class Enrolled:
    identity: Identity
    relay: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def request_certificate(
    token: EnrollmentToken, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Enrolled:
    """Steps 1-3: the certificate for a new key, from the relay the token names."""
    identity = Identity(token.agent, token.group)
    csr_pem, key_pem = create_csr(identity)
    where = HostPort.model_validate(token.relay)
    try:
        with _connect(where) as tls, tls.makefile("rb") as incoming:
            offered = parse_line(incoming.readline(MAX_LINE))
            ca_pem = str(offered.get("ca", "")).encode()
            check_relay(ca_pem, tls.getpeercert(binary_form=True) or b"", token, now())
            ask = {"token": token.id, "secret": token.secret, "csr": csr_pem.decode()}
            tls.sendall(line(ask))
            reply = parse_line(incoming.readline(MAX_LINE))
    except (OSError, ValueError) as exc:
        raise EnrollRefused(_why(exc, token)) from None
    if "error" in reply:
        raise EnrollRefused(f"the relay refused to enroll this agent: {reply['error']}")
    cert_pem = str(reply.get("certificate", "")).encode()
    _check_certificate(cert_pem, ca_pem, key_pem, identity)
    return Enrolled(identity, token.relay, ca_pem, cert_pem, key_pem)


def _connect(where: HostPort) -> ssl.SSLSocket:
    # Not verified by OpenSSL: the relay is checked against the token's pin (check_relay)
    # before anything is sent, which a CA bundle could not do.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([ENROLL_ALPN])
    raw = socket.create_connection((where.host, where.port), timeout=TIMEOUT)
    tls = context.wrap_socket(raw, server_hostname=where.host)
    if tls.selected_alpn_protocol() != ENROLL_ALPN:
        tls.close()
        raise ValueError(f"{where} does not take enrollments; is it the relay's agent port?")
    return tls


def _why(exc: OSError | ValueError, token: EnrollmentToken) -> str:
    if isinstance(exc, ValueError):
        return str(exc)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot reach the relay at {token.relay}: {reason}; check the address and firewall"


def _check_certificate(cert_pem: bytes, ca_pem: bytes, key_pem: bytes, identity: Identity) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        key = serialization.load_pem_private_key(key_pem, password=None)
        named = Identity.from_certificate(cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise EnrollRefused(f"the relay's answer is not a valid certificate ({exc})") from None
    if cert.public_key() != key.public_key() or named != identity:
        raise EnrollRefused("the relay's certificate is not for this agent's key and id")


def enroll_command(text: str, config: Path) -> str:
    """The whole command; the one line to print on success."""
    try:
        token = EnrollmentToken.decode(text)
        current = read_text(config)
    except ValueError as exc:
        raise EnrollRefused(str(exc)) from None
    except ConfigError as exc:
        raise EnrollRefused(f"{exc}; write the agent's config first") from None
    enrolled = request_certificate(token)
    write_enrollment(config, current, enrolled)
    return (
        f"enrolled as agent {enrolled.identity.agent_id}"
        + (f" in group {enrolled.identity.group}" if enrolled.identity.group else "")
        + f"; the tunnel to {enrolled.relay} is set up in {config}"
    )


def write_enrollment(config: Path, current: str, enrolled: Enrolled) -> None:
    """Step 4: the files beside the config, then its `tunnel:` section."""
    folder = config.resolve().parent
    paths = {"ca": "certs/ca.pem", "cert": "certs/agent.pem", "key": "certs/agent.key"}
    section = {"relay": enrolled.relay, **paths}
    text = with_section(current, config, "tunnel", section)
    try:
        parse_config(text, config, decrypter=open_with_state_key)
    except ConfigError as exc:
        raise EnrollRefused(
            f"{config} would not be a valid config after enrolling: {exc}"
        ) from None
    write_public(folder / paths["ca"], enrolled.ca_pem)
    write_key_pair(
        folder / paths["cert"], folder / paths["key"], enrolled.cert_pem, enrolled.key_pem
    )
    replace_config(config, text)
