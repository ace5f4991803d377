# The admin page's model as pure functions: readiness, the overall state and the status
# document over every combination of source, tunnel, audit, store and certificate states;
# the rolling request window on a hand-moved clock; the scrape-time metric families.
from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridgehead.adapters.base import PoolStats
from bridgehead.agent.admin.metrics import Counts, families
from bridgehead.agent.admin.status import (
    About,
    CertificateState,
    ConnectionState,
    Snapshot,
    SourceState,
    TunnelState,
    certificate_dict,
    checks,
    overall,
    readiness,
    status_document,
)
from bridgehead.agent.admin.window import RequestWindow, percentile

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POOL = PoolStats(1, 4, 0, 0.25)


def source(name: str, up: bool) -> SourceState:
    error = None if up else "connection refused"
    return SourceState(name, "odbc", "postgresql", error, 0.002, POOL, error)


def connection(number: int, state: str) -> ConnectionState:
    error = None if state == "up" else "ConnectionRefusedError: refused"
    return ConnectionState(number, state, NOW - timedelta(minutes=3), 0.004, 2, error, 1)


def tunnel(states: tuple[str, ...]) -> TunnelState:
    return TunnelState("relay.example:8443", tuple(connection(n, s) for n, s in enumerate(states)))


def certificate(days: float | None) -> CertificateState | None:
    if days is None:
        return None
    return CertificateState("CN=plant-7", "plant-7", NOW + timedelta(days=days))


SOURCES = {"all up": (True, True), "one down": (True, False), "all down": (False, False)}
TUNNELS: dict[str, tuple[str, ...] | None] = {
    "none": None, "both up": ("up", "up"), "one up": ("up", "down"),
    "none up": ("down", "connecting"), "draining": ("draining", "down"),
}  # fmt: skip
CERTS = {"no cert": None, "fresh": 25.0, "expiring": 3.0, "expired": -1.0}
AUDIT = {"audit ok": None, "audit failed": "OSError: [Errno 28] No space left on device"}
STORE = {"store ok": None, "store failed": "OperationalError: database is locked"}


def snapshot(sources: str, tunnel_: str, cert: str, audit: str, store: str) -> Snapshot:
    states = TUNNELS[tunnel_]
    return Snapshot(
        now=NOW,
        sources=tuple(source(f"s{i}", up) for i, up in enumerate(SOURCES[sources])),
        audit_failure=AUDIT[audit],
        store_failure=STORE[store],
        tunnel=None if states is None else tunnel(states),
        certificate=certificate(CERTS[cert]) if states is not None else None,
    )


COMBINATIONS = list(itertools.product(SOURCES, TUNNELS, CERTS, AUDIT, STORE))


def expected_state(sources: str, tunnel_: str, cert: str, audit: str, store: str) -> str:
    if audit == "audit failed" or sources == "all down":
        return "down"
    with_tunnel = tunnel_ != "none"
    if (
        sources == "one down" or store == "store failed"
        or tunnel_ in ("one up", "none up", "draining")
        or (with_tunnel and cert in ("expiring", "expired"))
    ):  # fmt: skip
        return "degraded"
    return "ok"


@pytest.mark.parametrize(("sources", "tunnel_", "cert", "audit", "store"), COMBINATIONS)
def test_ready_only_when_every_check_holds_and_state_names_why(
    sources: str, tunnel_: str, cert: str, audit: str, store: str
) -> None:
    """Ready exactly when every source answers, the audit log and the store write and (with
    a tunnel) a connection is up; the overall state is down when nothing can be served,
    degraded when something needs fixing, and every failing part appears in the reason."""
    snap = snapshot(sources, tunnel_, cert, audit, store)
    ready, body = readiness(snap)
    should_be_ready = (
        sources == "all up" and audit == "audit ok" and store == "store ok"
        and tunnel_ in ("none", "both up", "one up", "draining")
    )  # fmt: skip
    assert ready is should_be_ready
    assert body["ready"] is ready
    assert all(c["reason"] is None for c in body["checks"] if c["ok"])
    assert all(c["reason"] for c in body["checks"] if not c["ok"])
    state, reason = overall(snap)
    assert state == expected_state(sources, tunnel_, cert, audit, store)
    if state != "ok":
        assert reason
    if state == "degraded":
        for s in snap.sources:
            assert (f"source {s.name}" in reason) is (not s.up)


def test_checks_are_named_for_what_they_check() -> None:
    """The readiness checks are source:NAME for each source, audit, idempotency and tunnel."""
    snap = snapshot("one down", "none up", "fresh", "audit ok", "store ok")
    found = {c.name: c for c in checks(snap)}
    assert list(found) == ["source:s0", "source:s1", "audit", "idempotency", "tunnel"]
    assert found["source:s1"].reason == "connection refused"
    assert found["tunnel"].reason == (
        "no tunnel connection to relay.example:8443 is up "
        "(last error: ConnectionRefusedError: refused)"
    )


@pytest.mark.parametrize(("days", "words"), [
    (25.0, None), (3.0, "expires in 3.0 days"), (-1.0, "has expired"),
])  # fmt: skip
def test_certificate_expiry_is_reported_in_days_and_words(days: float, words: str | None) -> None:
    """The status document gives the certificate's days to expiry; near or past it, the
    overall reason says so."""
    snap = Snapshot(NOW, (source("s0", True),), None, None, tunnel(("up",)), certificate(days))
    about = About("0.1.0", "/etc/bridgehead/agent.yaml", NOW, NOW - timedelta(hours=1))
    doc = status_document(snap, about, [], [])
    assert doc["certificate"]["days_to_expiry"] == days
    assert doc["certificate"]["agent_id"] == "plant-7"
    assert doc["uptime_seconds"] == 3600
    assert (doc["state"] == "ok") is (words is None)
    if words:
        assert words in doc["reason"]


def test_unreadable_certificate_degrades_with_its_error() -> None:
    """A certificate file that cannot be read is named in the reason."""
    cert = CertificateState(None, None, None, "/x/agent.pem: No such file")
    snap = Snapshot(NOW, (source("s0", True),), None, None, tunnel(("up",)), cert)
    assert overall(snap) == (
        "degraded",
        "the tunnel certificate cannot be read (/x/agent.pem: No such file)",
    )


def test_status_document_lists_every_part() -> None:
    """/status.json carries state, sources with pools, each tunnel connection, the
    certificate, audit and store state, version and config, requests and errors."""
    snap = snapshot("one down", "one up", "fresh", "audit ok", "store ok")
    about = About("0.1.0", "/etc/agent.yaml", NOW, NOW)
    doc = status_document(snap, about, [{"target": "t"}], [{"request_id": "r1"}])
    assert doc["state"] == "degraded"
    assert doc["ready"] is False
    assert doc["sources"][1] == {
        "name": "s1", "driver": "odbc", "dbms": "postgresql", "dbms_version": None, "up": False,
        "probe_latency_ms": 2.0, "pool": {"in_use": 1, "size": 4, "waiting": 0},
        "error": "connection refused", "last_error": "connection refused",
    }  # fmt: skip
    assert doc["tunnel"]["up"] == 1
    assert doc["tunnel"]["connections"][0] == {
        "number": 0, "state": "up", "since": "2026-06-01T11:57:00+00:00", "rtt_ms": 4.0,
        "reconnects": 2, "streams": 1, "last_error": None,
    }  # fmt: skip
    assert doc["config"] == {"file": "/etc/agent.yaml", "loaded_at": "2026-06-01T12:00:00+00:00"}
    assert doc["requests"] == [{"target": "t"}]
    assert doc["errors"] == [{"request_id": "r1"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_counts_errors_and_percentiles_over_five_minutes() -> None:
    """Counts and p50/p95 cover the last 5 minutes only; 5xx answers count as errors."""
    clock = Clock()
    window = RequestWindow(clock=clock)
    for i in range(100):
        window.add("t", "read", 500 if i < 5 else 200, (i + 1) / 1000)
        clock.now += 1
    (stats,) = window.stats()
    assert (stats.target, stats.operation, stats.requests, stats.errors) == ("t", "read", 100, 5)
    assert stats.p50 == pytest.approx(0.050, rel=0.13)
    assert stats.p95 == pytest.approx(0.095, rel=0.13)
    clock.now += 249  # the first 50 seconds of requests are now 5 minutes old or more
    (stats,) = window.stats()
    assert (stats.requests, stats.errors) == (50, 0)
    clock.now += 300
    (stats,) = window.stats()  # still listed: its requests are in the 30-minute series
    assert (stats.requests, stats.errors, stats.p50) == (0, 0, None)
    clock.now += 30 * 60
    assert window.stats() == []


def test_window_keeps_thirty_minutes_of_per_minute_counts() -> None:
    """Each route carries its requests and errors per minute for the last 30 minutes,
    oldest first and this minute last, with zeros for quiet minutes."""
    clock = Clock()
    clock.now = 60 * 1000  # the start of a minute
    window = RequestWindow(clock=clock)
    for minute in range(40):
        for i in range(minute % 4):
            window.add("t", "read", 503 if i == 2 else 200, 0.001)
        clock.now += 60
    clock.now -= 60  # still in the minute of the last requests
    (stats,) = window.stats()
    assert len(stats.per_minute) == 30
    assert list(stats.per_minute) == [m % 4 for m in range(10, 40)]
    assert list(stats.errors_per_minute) == [int(m % 4 == 3) for m in range(10, 40)]
    assert stats.as_dict()["per_minute"] == list(stats.per_minute)
    clock.now += 5 * 60
    (stats,) = window.stats()
    assert list(stats.per_minute) == [m % 4 for m in range(15, 40)] + [0] * 5


def test_percentile_of_nothing_is_none() -> None:
    """With no samples there is no percentile."""
    assert percentile(Counter(), 0.5) is None


class _Families:
    def __init__(self, snap: Snapshot | None, counts: Counts) -> None:
        self.snap, self.counts = snap, counts

    def collect(self):  # type: ignore[no-untyped-def]
        return list(families(self.snap, self.counts))


def test_state_families_render_as_valid_prometheus_text() -> None:
    """The scrape-time families parse back with the figures of the snapshot."""
    registry = CollectorRegistry()
    snap = snapshot("one down", "one up", "fresh", "audit ok", "store ok")
    registry.register(_Families(snap, Counts(7, 0, 3, 0)))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text) for s in f.samples
    }  # fmt: skip
    assert samples["bridgehead_source_up", (("source", "s1"),)] == 0
    assert samples["bridgehead_pool_size", (("source", "s0"),)] == 4
    assert samples["bridgehead_tunnel_connections", (("state", "down"),)] == 1
    assert samples["bridgehead_tunnel_reconnects_total", ()] == 4
    assert samples["bridgehead_audit_records_written_total", ()] == 7
    assert samples["bridgehead_idempotency_keys", ()] == 3
    assert samples["bridgehead_certificate_expiry_seconds", ()] == 25 * 86400


def test_status_json_shows_the_renewal_state() -> None:
    """A certificate whose renewal keeps failing shows when it fell due, how many attempts
    failed, why, and when the next one runs, beside its days to expiry."""
    cert = CertificateState(
        "CN=plant-7", "plant-7", NOW + timedelta(days=5),
        renewal_due=NOW - timedelta(days=5), renewal_attempts=3,
        renewal_error="the relay refused: plant-7 is revoked",
        next_renewal=NOW + timedelta(minutes=8),
    )  # fmt: skip

    shown = certificate_dict(cert, NOW)

    assert shown is not None
    assert shown["days_to_expiry"] == 5.0
    assert shown["renewal"] == {
        "due": (NOW - timedelta(days=5)).isoformat(timespec="seconds"),
        "failed_attempts": 3,
        "last_error": "the relay refused: plant-7 is revoked",
        "next_attempt": (NOW + timedelta(minutes=8)).isoformat(timespec="seconds"),
    }
