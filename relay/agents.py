"""The agent port: TLS 1.3, where agents enroll and connect; one link per tunnel connection.

ALPN says which: the tunnel (`ALPN`) needs a client certificate from the relay's CA, and the
agent's identity comes only from it (URI SANs); enrollment (`ENROLL_ALPN`) needs a token
instead, so a certificate is asked for but not required at the TLS level. A tunnel without a
certificate, a revoked agent, any other ALPN, or a certificate naming another group than the
agent id's live connections is closed at once with a logged reason. An admitted link is
handed to the renewal desk (relay.renewal), which long-polls it for its renewal.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from cryptography import x509

from bridgehead.certs.enrollment import ENROLL_ALPN
from bridgehead.certs.pki import Identity
from bridgehead.common.tunnel import ALPN
from bridgehead.relay.config import RelayConfig
from bridgehead.relay.enrollment import Enrollment
from bridgehead.relay.link import AgentLink
from bridgehead.relay.registry import Registry
from bridgehead.relay.renewal import RenewalDesk
from bridgehead.relay.revocations import Revocations

log = logging.getLogger("bridgehead.relay")


def agent_port_context(config: RelayConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_OPTIONAL  # a presented certificate is still verified
    context.load_cert_chain(config.tls.cert, config.tls.key)
    context.load_verify_locations(cafile=config.ca.cert)
    context.set_alpn_protocols([ALPN, ENROLL_ALPN])
    return context


class AgentPort:
    def __init__(
        self,
        config: RelayConfig,
        registry: Registry,
        revocations: Revocations,
        enrollment: Enrollment,
        renewal: RenewalDesk,
    ) -> None:
        self.config, self.registry, self.revocations = config, registry, revocations
        self.enrollment, self.renewal = enrollment, renewal
        self.tasks: set[asyncio.Task[None]] = set()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
        if tls.selected_alpn_protocol() == ENROLL_ALPN:
            await self.enrollment.serve(reader, writer, peer)
            return
        link = self._admit(tls, reader, writer, peer)
        if link is None:
            writer.close()
            return
        log.info("agent %s (group %s) connected from %s (certificate serial %x)",
                 link.identity.agent_id, link.identity.group, peer, link.serial)  # fmt: skip
        renewing = asyncio.create_task(self.renewal.serve(link))  # after run() starts the session
        try:
            await link.run()
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            self.registry.remove(link)
            log.info("agent %s disconnected (%s)", link.identity.agent_id, peer)

    def _admit(
        self,
        tls: ssl.SSLObject,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: object,
    ) -> AgentLink | None:
        """The link for a tunnel connection the relay accepts, registered; None (the reason
        logged) for one it refuses."""
        certificate = self._certificate(tls, peer)
        if certificate is None:
            return None
        identity, serial = Identity.from_certificate(certificate), certificate.serial_number
        issued = certificate.not_valid_before_utc
        if self.revocations.refuses(identity.agent_id, issued, serial):
            log.warning("agent %s is revoked (certificate serial %x); connection from %s refused",
                        identity.agent_id, serial, peer)  # fmt: skip
            return None
        link = AgentLink(
            identity, reader, writer, issued=issued, serial=serial,
            heartbeat=self.config.heartbeat, dead_after=self.config.dead_after,
        )  # fmt: skip
        clash = self.registry.admit(link)
        if clash is not None:
            log.warning(
                "agent %s connection from %s refused: its certificate (serial %x) names group "
                "%s, but the agent's live connections (certificate serial %x) are in group %s; "
                "revoke the certificate that should not exist",
                identity.agent_id, peer, serial, identity.group, clash.serial, clash.identity.group,
            )  # fmt: skip
            return None
        return link

    def _certificate(self, tls: ssl.SSLObject, peer: object) -> x509.Certificate | None:
        """The tunnel connection's verified agent certificate, or None (logged) without one."""
        protocol, der = tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True)
        if protocol != ALPN or not der:
            why = f"it does not speak {ALPN}" if protocol != ALPN else "it sent no certificate"
            log.warning("agent connection from %s refused: %s", peer, why)
            return None
        try:
            certificate = x509.load_der_x509_certificate(der)
            Identity.from_certificate(certificate)
        except ValueError as exc:
            log.warning("agent connection from %s refused: %s", peer, exc)
            return None
        return certificate
