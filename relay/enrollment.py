"""The relay's end of enrollment: redeem a one-time token, sign the agent's CSR.

One exchange per TLS connection on the agent port with ALPN `ENROLL_ALPN` (the wire format is
in `certs.enrollment`). The relay speaks first, offering its CA so the agent can check the pin
before it reveals anything. The CSR is checked before the token is redeemed, and the token is
redeemed (durably) before the certificate is signed: a bad request costs no token, and no
token ever yields two certificates. The agent's identity comes from the token, never from
the CSR. Each refusal is logged and sent to the agent as the same one sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from bridgehead.certs.enrollment import MAX_LINE, EnrollmentToken, ca_fingerprint, line, parse_line
from bridgehead.certs.pki import Identity, check_name, csr_public_key, sign_agent_csr
from bridgehead.common.config.base import HostPort
from bridgehead.relay.config import RelayConfig
from bridgehead.relay.tokens import TokenRefused, TokenStore, utc_now

log = logging.getLogger("bridgehead.relay")
EXCHANGE_TIMEOUT = 10.0
FAULT = (
    "the relay could not complete the enrollment (a fault on the relay: its log says what); "
    "try again once the relay's operator has fixed it"
)


class Enrollment:
    def __init__(
        self,
        config: RelayConfig,
        tokens: TokenStore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config, self.tokens, self.clock = config, tokens, clock

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        try:
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                ca_pem = await asyncio.to_thread(self.config.ca.cert.read_bytes)
                writer.write(line({"ca": ca_pem.decode()}))
                await writer.drain()
                request = await reader.readuntil(b"\n")
                reply = await asyncio.to_thread(self._answer, request)
                writer.write(line(reply))
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            log.warning("enrollment from %s abandoned: %s", peer, type(exc).__name__)
        except (ConnectionError, OSError) as exc:
            log.warning("enrollment from %s failed: %s", peer, exc)
        finally:
            writer.close()

    def _answer(self, request: bytes) -> dict[str, Any]:
        try:
            if len(request) > MAX_LINE:
                raise ValueError("the enrollment request is too large")
            return self.enroll(parse_line(request))
        except ValueError as exc:  # TokenRefused included
            log.warning("enrollment refused: %s", exc)
            return {"error": str(exc)}
        except OSError as exc:  # the relay's own files: its operator must act, not the agent's
            log.error("enrollment failed on this relay: %s", exc)
            return {"error": FAULT}

    def enroll(self, message: dict[str, Any]) -> dict[str, Any]:
        """The certificate for a token and CSR; ValueError (one sentence) if refused."""
        token, secret, csr = (_text(message, k) for k in ("token", "secret", "csr"))
        ca_key = self.config.ca.key
        if ca_key is None:
            raise TokenRefused("this relay has no ca.key in relay.yaml, so it cannot sign")
        csr_public_key(csr.encode())
        now = self.clock()
        entry = self.tokens.redeem(token, secret, now)
        identity = Identity(entry.agent, entry.group)
        certificate = sign_agent_csr(
            self.config.ca.cert.read_bytes(), ca_key.read_bytes(), csr.encode(), identity,
            days=self.config.enrollment.lifetime / 86400, now=now,
        )  # fmt: skip
        log.info("agent %s (group %s) enrolled with token %s", entry.agent, entry.group, token)
        return {"certificate": certificate.decode(), "agent": entry.agent, "group": entry.group}


def create_token(
    config: RelayConfig,
    agent: str,
    group: str | None,
    ttl: timedelta,
    *,
    address: HostPort | None = None,
    now: datetime | None = None,
) -> str:
    """A new one-time token for `agent`, stored (hashed) in the relay's state folder."""
    check_name("agent id", agent)
    if group is not None:
        check_name("group", group)
    where = address or config.enrollment.address or _default_address(config)
    fingerprint = ca_fingerprint(config.ca.cert.read_bytes())
    entry, secret = TokenStore(config.state_path).create(agent, group, ttl, now or utc_now())
    token = EnrollmentToken(str(where), fingerprint, entry.id, secret, agent, group)
    return token.encode()


def _default_address(config: RelayConfig) -> HostPort:
    """Where agents reach the agent port: its host unless it is a wildcard, else the relay
    certificate's first name; the agents_listen port either way."""
    port = config.agents_listen.port
    if config.agents_listen.host not in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing
        return HostPort(host=config.agents_listen.host, port=port)
    cert = x509.load_pem_x509_certificate(config.tls.cert.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    first = next(iter(names), None) if names else None
    if first is None:
        raise ValueError(
            f"{config.tls.cert} names no host; set enrollment: {{address: HOST:PORT}} in "
            "relay.yaml to say where agents reach this relay"
        )
    return HostPort(host=str(first.value), port=port)


def _text(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the enrollment request has no {name}; run a current bridgehead enroll")
    return value
