"""The tunnel: outbound mutual-TLS HTTP/2 connections from the agent to the relay.

This package's own module holds only what the composition root needs whether or not a tunnel
is configured, so an agent without one never imports the tunnel's modules (and cryptography).
"""

from __future__ import annotations

from datetime import UTC, datetime

RENEW_CHECK = 10.0
"""Seconds between checks whether the certificate's renewal is due."""


def utc_now() -> datetime:
    return datetime.now(UTC)
