"""The relay's end of certificate renewal, over each agent's own authenticated connection.

Once a link is admitted, `RenewalDesk.serve` opens a long poll on it, `GET
/.bridgehead/renewal`; the agent answers it only when its renewal is due, with a CSR. The
relay then answers with `POST /.bridgehead/certificate`: {"certificate": PEM} or {"error":
SENTENCE}, and opens the poll again (the full exchange is in agent.tunnel.renewal). Callers
can never open these paths: relay.callers refuses them (common.tunnel.control).

Rules:
- The new certificate names exactly the identity of the link's verified certificate; what
  the CSR says is ignored, only its key is used (certs.pki.sign_agent_csr). Its lifetime is
  `enrollment.lifetime`, dated by the injected `clock`.
- Revocations are checked first, by agent id and by the link's certificate serial: a
  revoked certificate is never renewed. A relay without `ca.key` refuses to sign.
- One certificate per agent id per `MIN_GAP` at most, whatever its links ask; after a
  certificate is sent, that link is not polled again (the agent rotates it away).
- Each outcome is one log line naming the agent and both serials; a refusal is the same
  sentence the agent logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from cryptography import x509

from bridgehead.certs.pki import sign_agent_csr
from bridgehead.common.tunnel import control
from bridgehead.relay.config import RelayConfig
from bridgehead.relay.link import AgentLink, BadExchange, BodyCut, LinkClosed
from bridgehead.relay.revocations import Revocations
from bridgehead.relay.tokens import utc_now

log = logging.getLogger("bridgehead.relay")
MIN_GAP = timedelta(seconds=60)
REPOLL_AFTER = 1.0
"""Seconds before polling again after an agent answered the poll without a CSR."""


class RenewalDesk:
    def __init__(
        self,
        config: RelayConfig,
        revocations: Revocations,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config, self.revocations, self.clock, self.sleep = config, revocations, clock, sleep
        self._signed: dict[str, datetime] = {}
        """When each agent id was last given a certificate."""

    async def serve(self, link: AgentLink) -> None:
        """While the link lives: wait for its CSR, answer it, and poll again."""
        try:
            while not link.closed.is_set() and not link.draining:
                status, body = await link.exchange("GET", control.RENEWAL, None)
                if status == 204:
                    await self.sleep(REPOLL_AFTER)
                    continue
                if status != 200:
                    log.warning("agent %s answered the renewal poll with %d; not polling it "
                                "again", link.identity.agent_id, status)  # fmt: skip
                    return
                reply = await asyncio.to_thread(self.answer, link, body)
                status, body = await link.exchange("POST", control.CERTIFICATE, reply)
                self._report(link, status, body)
                if "certificate" in reply and status == 204:
                    return
        except (LinkClosed, BodyCut, BadExchange):
            return  # the link went away; its agent polls again on its other links

    def answer(self, link: AgentLink, body: bytes) -> dict[str, Any]:
        """The certificate for the CSR in `body`, or the sentence saying why not."""
        agent = link.identity.agent_id
        try:
            certificate = self._sign(link, _csr(body))
        except ValueError as exc:
            log.warning("agent %s (certificate serial %x): renewal refused: %s", agent,
                        link.serial, exc)  # fmt: skip
            return {"error": str(exc)}
        issued = x509.load_pem_x509_certificate(certificate)
        log.info("agent %s (group %s): certificate serial %x renewed as serial %x, valid until "
                 "%s", agent, link.identity.group, link.serial, issued.serial_number,
                 issued.not_valid_after_utc.isoformat())  # fmt: skip
        return {"certificate": certificate.decode()}

    def _sign(self, link: AgentLink, csr: bytes) -> bytes:
        agent = link.identity.agent_id
        if self.revocations.refuses(agent, link.issued, link.serial):
            raise ValueError(f"agent {agent}'s certificate (serial {link.serial:x}) is revoked; "
                             "enroll the agent again")  # fmt: skip
        ca_key = self.config.ca.key
        if ca_key is None:
            raise ValueError("this relay has no ca.key in relay.yaml, so it cannot sign")
        now = self.clock()
        last = self._signed.get(agent)
        if last is not None and now - last < MIN_GAP:
            raise ValueError(f"agent {agent} was given a certificate less than "
                             f"{MIN_GAP.seconds} s ago; retry later")  # fmt: skip
        certificate = sign_agent_csr(
            self.config.ca.cert.read_bytes(), ca_key.read_bytes(), csr, link.identity,
            days=self.config.enrollment.lifetime / 86400, now=now,
        )  # fmt: skip
        self._signed[agent] = now
        return certificate

    def _report(self, link: AgentLink, status: int, body: bytes) -> None:
        if status == 204:
            return
        detail = _detail(body)
        log.warning("agent %s did not take the renewal answer (%d): %s",
                    link.identity.agent_id, status, detail)  # fmt: skip


def _csr(body: bytes) -> bytes:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        message = None
    csr = message.get("csr") if isinstance(message, dict) else None
    if not isinstance(csr, str):
        raise ValueError("the renewal request holds no CSR")
    return csr.encode()


def _detail(body: bytes) -> str:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace")
    return str(problem.get("detail")) if isinstance(problem, dict) else str(problem)
