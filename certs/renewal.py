"""When an agent renews its tunnel certificate, and whether a certificate the relay sent may
replace the one it holds. Pure: no I/O, the time passed in (`clock`).

Rules:
- Renewal falls due at `renew_at` (a fraction, 0 < x < 1) of the certificate's lifetime,
  counted from its not_before; a certificate already past that point is due at once.
- One attempt at a time: `start` takes it; `failed`, `renewed` or `released` (the attempt
  never reached the relay) ends it. A failed attempt is retried after a backoff delay
  (common.tunnel.backoff, capped, drawn between half the ceiling and the ceiling so a retry
  never comes at once), and counted in `attempts`; `renewed` starts over with the new dates.
- A certificate from the relay is installed only if the agents' CA issued it directly, it is
  for the key this agent made for the attempt, it names this agent's own identity and it is
  valid now (`check_renewed`); each refusal is one sentence.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from bridgehead.certs.pki import Identity
from bridgehead.common.tunnel.backoff import Backoff

RETRY_BASE = 60.0
RETRY_CAP = 3600.0
"""Seconds: a failed renewal is retried after about a minute, doubling up to an hour."""


def retry_backoff(base: float = RETRY_BASE, cap: float = RETRY_CAP) -> Backoff:
    """Delays between failed renewals: between half the ceiling and the ceiling."""
    return Backoff(base=base, cap=cap, draw=lambda _low, high: random.uniform(high / 2, high))  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class RenewalStatus:
    """What a health page, metrics or `/readyz` may show about the tunnel certificate."""

    not_after: datetime | None
    """When the certificate in use expires (None before it was read)."""
    seconds_left: float | None
    due_at: datetime | None
    """When renewal falls due (or fell due)."""
    attempts: int
    """Failed attempts since the certificate was last renewed or replaced."""
    last_error: str | None
    next_attempt: datetime | None
    """When a failed renewal is tried again; None while none failed."""
    renewing: bool
    """An attempt is under way."""
    failures: int = 0
    """Failed attempts since the agent started (only ever grows: for a metric)."""


class Renewal:
    def __init__(
        self, renew_at: float, clock: Callable[[], datetime], backoff: Backoff | None = None
    ) -> None:
        if not 0 < renew_at < 1:
            raise ValueError(f"renew_at must be between 0 and 1, not {renew_at}")
        self.renew_at, self.clock = renew_at, clock
        self.backoff = backoff or retry_backoff()
        self.not_before: datetime | None = None
        self.not_after: datetime | None = None
        self.attempts = 0
        self.last_error: str | None = None
        self.retry_at: datetime | None = None
        self.in_flight = False
        self.failures = 0

    def track(self, certificate: x509.Certificate) -> None:
        """The certificate now in use (read at start, renewed, or replaced on disk)."""
        self.not_before = certificate.not_valid_before_utc
        self.not_after = certificate.not_valid_after_utc
        self.attempts, self.last_error, self.retry_at = 0, None, None
        self.backoff.reset()

    @property
    def due_at(self) -> datetime | None:
        if self.not_before is None or self.not_after is None:
            return None
        return self.not_before + (self.not_after - self.not_before) * self.renew_at

    def is_due(self) -> bool:
        """Whether an attempt should start now."""
        due = self.retry_at or self.due_at
        return not self.in_flight and due is not None and self.clock() >= due

    def start(self) -> None:
        assert not self.in_flight, "one renewal attempt at a time"
        self.in_flight = True

    def failed(self, error: str) -> float:
        """The attempt failed because of `error`; seconds until the next one."""
        self.in_flight = False
        self.attempts += 1
        self.failures += 1
        self.last_error = error
        delay = self.backoff.next_delay()
        self.retry_at = self.clock() + timedelta(seconds=delay)
        return delay

    def released(self) -> None:
        """The attempt ended before the relay saw it (its connection drained): not counted."""
        self.in_flight = False

    def renewed(self, certificate: x509.Certificate) -> None:
        self.in_flight = False
        self.track(certificate)

    def seconds_left(self) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - self.clock()).total_seconds()

    def status(self) -> RenewalStatus:
        return RenewalStatus(
            not_after=self.not_after,
            seconds_left=self.seconds_left(),
            due_at=self.due_at,
            attempts=self.attempts,
            last_error=self.last_error,
            next_attempt=self.retry_at,
            renewing=self.in_flight,
            failures=self.failures,
        )


def check_renewed(
    ca_pem: bytes, cert_pem: bytes, key_pem: bytes, identity: Identity, now: datetime
) -> x509.Certificate:
    """The certificate the relay sent, if it may replace this agent's; ValueError saying why
    not (one sentence)."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        raise ValueError("the relay sent no PEM certificate") from None
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError(
            "the certificate was not issued by the CA this agent trusts (tunnel.ca)"
        ) from None
    key = serialization.load_pem_private_key(key_pem, password=None)
    if certificate.public_key() != key.public_key():
        raise ValueError("the certificate is not for the key this agent made for the renewal")
    named = Identity.from_certificate(certificate)
    if named != identity:
        raise ValueError(
            f"the certificate names agent {named.agent_id} (group {named.group}), but this "
            f"agent is {identity.agent_id} (group {identity.group})"
        )
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ValueError("the certificate is not valid now; check the clocks of agent and relay")
    return certificate


def days_left(certificate: x509.Certificate, now: datetime) -> float:
    """Days until the certificate expires (negative once it has)."""
    return (certificate.not_valid_after_utc - now).total_seconds() / 86400
