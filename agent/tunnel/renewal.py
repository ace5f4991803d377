"""The agent's side of certificate renewal over its own tunnel connections.

The exchange (paths from common.tunnel.control, which the relay never forwards for callers):
  relay → agent  GET /.bridgehead/renewal       a long poll, opened on each connection
  agent → relay  200 {"csr": PEM}               once renewal is due, on one connection only;
                 204                            when that connection drains instead
  relay → agent  POST /.bridgehead/certificate  {"certificate": PEM} or {"error": SENTENCE}
  agent → relay  204                            installed (or the relay's refusal noted),
                 4xx problem                    the certificate refused, saying why
The relay signs for the identity of the connection's verified certificate, after checking
revocations; the key never leaves the agent (a new one each attempt).

Rules:
- When to renew and retry is decided by certs.renewal's `Renewal` on the injected clock;
  `tick` (called by the tunnel client every few seconds) wakes the long polls when it is due.
- A certificate is installed only after `check_renewed` accepts it: the pair in use is
  first copied to NAME.previous, then replaced with `write_key_pair` (crash-safe); the
  previous pair is removed once a connection made with the new certificate is up.
- Every attempt logs one line when it starts, and one when it fails, with the time left
  before the certificate expires, so a failing renewal is seen weeks before it matters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509

from bridgehead.agent.config.model import TunnelConfig
from bridgehead.certs.pki import (
    Identity,
    create_csr,
    drop_previous,
    keep_previous,
    previous,
    write_key_pair,
)
from bridgehead.certs.renewal import Renewal, RenewalStatus, check_renewed

log = logging.getLogger("bridgehead.tunnel")


def read_certificate(path: Any) -> x509.Certificate:
    with open(path, "rb") as file:
        return x509.load_pem_x509_certificate(file.read())


def expired_certificate(tunnel: TunnelConfig, now: datetime) -> str | None:
    """The sentence for a tunnel certificate that has expired, or None (unreadable files
    are left to the tunnel, which retries and logs them)."""
    try:
        certificate = read_certificate(tunnel.cert)
    except (OSError, ValueError):
        return None
    if certificate.not_valid_after_utc > now:
        return None
    return (
        f"the tunnel certificate {tunnel.cert} expired on "
        f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, so the relay will refuse it; "
        "enroll again with `bridgehead enroll TOKEN -c agent.yaml`, TOKEN from "
        "`bridgehead-relay token create --agent ID` on the relay"
    )


class Renewer:
    def __init__(self, config: TunnelConfig, clock: Callable[[], datetime]) -> None:
        self.config, self.clock = config, clock
        self.schedule = Renewal(config.renew_at, clock)
        self.identity: Identity | None = None
        self.serial: int | None = None
        """The serial of the certificate in use."""
        self.on_renewed: Callable[[], None] = lambda: None
        self._wake = asyncio.Condition()
        self._key: bytes | None = None
        """The private key made for the attempt under way (never sent anywhere)."""
        self._owner: object | None = None
        self._unconfirmed: int | None = None
        """A renewed certificate's serial while the previous pair is still kept."""

    def status(self) -> RenewalStatus:
        return self.schedule.status()

    async def load(self) -> None:
        """Track the certificate file in use (at start, or after it was replaced)."""
        certificate = await asyncio.to_thread(read_certificate, self.config.cert)
        self.identity = Identity.from_certificate(certificate)
        self.serial = certificate.serial_number
        if not self.schedule.in_flight:
            self.schedule.track(certificate)
        kept = await asyncio.to_thread(previous(self.config.cert).exists)
        self._unconfirmed = self.serial if kept else None

    async def tick(self) -> None:
        """Wake the long polls if renewal is due now."""
        if self.schedule.is_due():
            async with self._wake:
                self._wake.notify_all()

    async def request(self, owner: object) -> bytes:
        """Wait until renewal is due, take the attempt, and return its CSR (the key kept)."""
        async with self._wake:
            await self._wake.wait_for(self.schedule.is_due)
            self.schedule.start()
        self._owner = owner
        try:
            assert self.identity is not None  # is_due needs a tracked certificate
            csr, self._key = await asyncio.to_thread(create_csr, self.identity)
        except BaseException:
            self.release()
            raise
        log.info(
            "tunnel: renewing the certificate (serial %x, expires %s), attempt %d",
            self.serial or 0, _when(self.schedule.not_after), self.schedule.attempts + 1,
        )  # fmt: skip
        return csr

    def release(self) -> None:
        """The attempt's CSR never left (its connection drained first): not counted."""
        if self.schedule.in_flight:
            self.schedule.released()
        self._key = self._owner = None

    def lost(self, owner: object) -> None:
        """A connection closed: an attempt it carried has failed."""
        if self.schedule.in_flight and self._owner is owner:
            self._failed("the connection carrying the renewal closed before the answer")

    async def answer(self, message: dict[str, Any]) -> str | None:
        """Take the relay's answer; None if accepted, else why the certificate is refused."""
        key = self._key
        if not self.schedule.in_flight or key is None:
            return "no certificate renewal is pending on this agent"
        if isinstance(message.get("error"), str):
            self._failed(f"the relay refused: {message['error']}")
            return None
        pem = message.get("certificate")
        if not isinstance(pem, str):
            self._failed("the relay's answer holds neither a certificate nor an error")
            return 'send {"certificate": PEM} or {"error": SENTENCE}'
        try:
            certificate = await asyncio.to_thread(self._check, pem.encode(), key)
        except ValueError as exc:
            self._failed(f"the relay's certificate is refused: {exc}")
            return str(exc)
        await asyncio.to_thread(self._install, pem.encode(), key)
        self._renewed(certificate)
        return None

    def _check(self, pem: bytes, key: bytes) -> x509.Certificate:
        assert self.identity is not None
        ca = self.config.ca.read_bytes()
        return check_renewed(ca, pem, key, self.identity, self.clock())

    def _install(self, pem: bytes, key: bytes) -> None:
        keep_previous(self.config.cert, self.config.key)
        write_key_pair(self.config.cert, self.config.key, pem, key)

    def _renewed(self, certificate: x509.Certificate) -> None:
        self._key = self._owner = None
        self.schedule.renewed(certificate)
        old, self.serial = self.serial, certificate.serial_number
        self._unconfirmed = self.serial
        log.info(
            "tunnel: certificate renewed: serial %x replaces %x, valid until %s; the previous "
            "pair is kept as %s until the new one connects; rotating the connections",
            self.serial, old or 0, _when(certificate.not_valid_after_utc),
            previous(self.config.cert).name,
        )  # fmt: skip
        self.on_renewed()

    def _failed(self, error: str) -> None:
        self._key = self._owner = None
        delay = self.schedule.failed(error)
        left = self.schedule.seconds_left() or 0.0
        log.warning(
            "tunnel: certificate renewal failed (attempt %d): %s; the certificate expires in "
            "%.1f days (%s); retrying in %.0f s",
            self.schedule.attempts, error, left / 86400, _when(self.schedule.not_after), delay,
        )  # fmt: skip

    async def connected(self, serial: int | None) -> None:
        """A connection is up with the certificate `serial`: once it is the renewed one,
        the previous pair is no longer needed."""
        if serial is None or serial != self._unconfirmed:
            return
        self._unconfirmed = None
        if await asyncio.to_thread(drop_previous, self.config.cert, self.config.key):
            log.info("tunnel: the renewed certificate (serial %x) connected; the previous "
                     "pair removed", serial)  # fmt: skip


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "unknown"
