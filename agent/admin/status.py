"""The admin page's model: plain data about the agent's parts (a `Snapshot`) and pure
functions over it: the readiness checks and warnings (what an operator should look at that
leaves the agent ready, such as an event consumer far behind), the overall state in words,
the status document.

Rules: no I/O and no clocks here; whatever the functions need (the time, the figures) is in
their arguments, so every combination of source, tunnel, audit and certificate states can be
checked without starting anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bridgehead.adapters.base import PoolStats
from bridgehead.agent.admin.events import EventsState, backlog_warnings, events_dict

State = Literal["ok", "degraded", "down"]
CERT_WARN_DAYS = 7.0
"""A tunnel certificate this close to expiry makes the agent degraded."""


@dataclass(frozen=True)
class SourceState:
    name: str
    driver: str
    """The adapter: sqlite, odbc, or a plug-in's name."""
    dbms: str | None
    """The dialect learned from the DBMS, None before the first connection."""
    probe_error: str | None
    """Why the last probe failed, or None when the source answered it."""
    latency: float | None
    """Seconds the last probe took."""
    pool: PoolStats | None
    last_error: str | None = None
    """The last probe failure seen, kept after the source recovers."""
    version: str | None = None
    """The DBMS's version as its driver reports it."""

    @property
    def up(self) -> bool:
        return self.probe_error is None


@dataclass(frozen=True)
class ConnectionState:
    number: int
    state: str
    """connecting, up, draining or down."""
    since: datetime | None
    rtt: float | None
    """Seconds of the last PING round trip."""
    reconnects: int
    last_error: str | None
    streams: int = 0
    """Requests in flight on it."""


@dataclass(frozen=True)
class TunnelState:
    relay: str
    connections: tuple[ConnectionState, ...]

    @property
    def up(self) -> int:
        return sum(c.state in ("up", "draining") for c in self.connections)


@dataclass(frozen=True)
class CertificateState:
    subject: str | None
    agent_id: str | None
    not_after: datetime | None
    error: str | None = None
    """Why the certificate could not be read."""
    renewal_due: datetime | None = None
    renewal_attempts: int = 0
    """Failed renewals since the certificate was last renewed."""
    renewal_error: str | None = None
    next_renewal: datetime | None = None
    """When a failed renewal is tried again."""

    def days_left(self, now: datetime) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - now).total_seconds() / 86400


@dataclass(frozen=True)
class Snapshot:
    """The agent's parts at one moment."""

    now: datetime
    sources: tuple[SourceState, ...]
    audit_failure: str | None
    store_failure: str | None
    tunnel: TunnelState | None = None
    certificate: CertificateState | None = None
    events: EventsState | None = None
    """The event log's consumers; None when the agent captures no events."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "reason": self.reason}


def checks(snapshot: Snapshot) -> list[Check]:
    """What readiness needs, each with why it is not met."""
    found = [_source_check(s) for s in snapshot.sources]
    found.append(Check("audit", snapshot.audit_failure is None, _stopped(snapshot.audit_failure)))
    store = snapshot.store_failure
    found.append(Check("idempotency", store is None, _stopped(store)))
    if snapshot.tunnel is not None:
        found.append(_tunnel_check(snapshot.tunnel))
    return found


def warnings(snapshot: Snapshot) -> list[dict[str, str]]:
    """What an operator should look at that does not make the agent unready: each with the
    part it names and what to do."""
    return [{"name": name, "reason": reason} for name, reason in backlog_warnings(snapshot.events)]


def readiness(snapshot: Snapshot) -> tuple[bool, dict[str, Any]]:
    """Whether the agent is ready, and the `/readyz` body (its warnings never make it unready)."""
    found = checks(snapshot)
    ready = all(c.ok for c in found)
    body = {"ready": ready, "checks": [c.as_dict() for c in found], "warnings": warnings(snapshot)}
    return ready, body


def overall(snapshot: Snapshot) -> tuple[State, str]:
    """ok, degraded (something an operator should fix, requests still served) or down
    (nothing can be served), with the reason in words."""
    if snapshot.audit_failure is not None:
        return (
            "down",
            f"the audit log stopped writing ({snapshot.audit_failure}): no request is served",
        )
    if snapshot.sources and not any(s.up for s in snapshot.sources):
        return "down", "no source answers: " + "; ".join(_source_reasons(snapshot.sources))
    problems = list(_degradations(snapshot))
    if problems:
        return "degraded", "; ".join(problems)
    return "ok", "every source answers" + (
        ", and the tunnel is up" if snapshot.tunnel is not None else ""
    )


def _degradations(snapshot: Snapshot) -> Iterator[str]:
    yield from _source_reasons(snapshot.sources)
    if snapshot.store_failure is not None:
        yield f"the idempotency store cannot write ({snapshot.store_failure})"
    tunnel = snapshot.tunnel
    if tunnel is not None:
        if tunnel.up == 0:
            yield _tunnel_check(tunnel).reason or ""
        elif tunnel.up < len(tunnel.connections):
            yield f"{tunnel.up} of {len(tunnel.connections)} tunnel connections are up"
    yield from _certificate_problems(snapshot.certificate, snapshot.now)


def _certificate_problems(cert: CertificateState | None, now: datetime) -> Iterator[str]:
    if cert is None:
        return
    if cert.error is not None:
        yield f"the tunnel certificate cannot be read ({cert.error})"
        return
    days = cert.days_left(now)
    if days is not None and days <= 0:
        yield "the tunnel certificate has expired: enroll the agent again"
    elif days is not None and days < CERT_WARN_DAYS:
        yield f"the tunnel certificate expires in {days:.1f} days and has not been renewed"


def _source_reasons(sources: Sequence[SourceState]) -> Iterator[str]:
    for source in sources:
        if not source.up:
            yield f"source {source.name} does not answer ({source.probe_error})"


def _source_check(source: SourceState) -> Check:
    return Check(f"source:{source.name}", source.up, source.probe_error)


def _tunnel_check(tunnel: TunnelState) -> Check:
    if tunnel.up:
        return Check("tunnel", True)
    errors = [c.last_error for c in tunnel.connections if c.last_error]
    why = f" (last error: {errors[-1]})" if errors else ""
    return Check("tunnel", False, f"no tunnel connection to {tunnel.relay} is up{why}")


def _stopped(failure: str | None) -> str | None:
    return None if failure is None else f"cannot write: {failure}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def source_dict(source: SourceState) -> dict[str, Any]:
    pool = source.pool
    return {
        "name": source.name,
        "driver": source.driver,
        "dbms": source.dbms,
        "dbms_version": source.version,
        "up": source.up,
        "probe_latency_ms": None if source.latency is None else round(source.latency * 1000, 3),
        "pool": None if pool is None else {
            "in_use": pool.in_use, "size": pool.size, "waiting": pool.waiting,
        },
        "error": source.probe_error,
        "last_error": source.last_error,
    }  # fmt: skip


def connection_dict(connection: ConnectionState) -> dict[str, Any]:
    rtt = connection.rtt
    return {
        "number": connection.number,
        "state": connection.state,
        "since": _iso(connection.since),
        "rtt_ms": None if rtt is None else round(rtt * 1000, 3),
        "reconnects": connection.reconnects,
        "streams": connection.streams,
        "last_error": connection.last_error,
    }


def tunnel_dict(tunnel: TunnelState | None) -> dict[str, Any] | None:
    if tunnel is None:
        return None
    return {
        "relay": tunnel.relay,
        "up": tunnel.up,
        "connections": [connection_dict(c) for c in tunnel.connections],
    }


def certificate_dict(cert: CertificateState | None, now: datetime) -> dict[str, Any] | None:
    if cert is None:
        return None
    days = cert.days_left(now)
    return {
        "subject": cert.subject,
        "agent_id": cert.agent_id,
        "not_after": _iso(cert.not_after),
        "days_to_expiry": None if days is None else round(days, 2),
        "error": cert.error,
        "renewal": {
            "due": _iso(cert.renewal_due),
            "failed_attempts": cert.renewal_attempts,
            "last_error": cert.renewal_error,
            "next_attempt": _iso(cert.next_renewal),
        },
    }


@dataclass(frozen=True)
class About:
    """What does not change while the agent runs."""

    version: str
    config_file: str | None
    loaded_at: datetime
    started_at: datetime


def status_document(
    snapshot: Snapshot,
    about: About,
    requests: Sequence[dict[str, Any]],
    errors: Sequence[dict[str, Any]],
    jobs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Everything the admin page shows (`GET /status.json`); `jobs` as
    `agent.admin.runs.job_states` gives them."""
    state, reason = overall(snapshot)
    ready, _ = readiness(snapshot)
    return {
        "state": state,
        "reason": reason,
        "ready": ready,
        "warnings": warnings(snapshot),
        "time": _iso(snapshot.now),
        "version": about.version,
        "config": {"file": about.config_file, "loaded_at": _iso(about.loaded_at)},
        "started_at": _iso(about.started_at),
        "uptime_seconds": round((snapshot.now - about.started_at).total_seconds(), 3),
        "sources": [source_dict(s) for s in snapshot.sources],
        "tunnel": tunnel_dict(snapshot.tunnel),
        "certificate": certificate_dict(snapshot.certificate, snapshot.now),
        "audit": {"ok": snapshot.audit_failure is None, "failure": snapshot.audit_failure},
        "idempotency": {"ok": snapshot.store_failure is None, "failure": snapshot.store_failure},
        "requests": list(requests),
        "errors": list(errors),
        "jobs": list(jobs),
        "events": events_dict(snapshot.events, snapshot.now),
    }
