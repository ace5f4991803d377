"""The agent's Prometheus metrics, in a registry of each agent's own (two agents in one
process never mix or collide): request figures counted as requests finish, and the state of
sources, tunnel, audit log, idempotency store, certificate and event log read from the latest
`Snapshot` when scraped; each job's runs, rows and last success counted as its runs end, and
whether it is running read when scraped.

Rules: observing a request is a few counter increments (label children are cached), so
the keyed-GET path stays as fast as without metrics; the scrape-time families are built from
plain data (`families`), with no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridgehead.agent.admin.events import event_families
from bridgehead.agent.admin.status import Snapshot
from bridgehead.agent.metrics import FALLBACK_VALUES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TUNNEL_STATES = ("connecting", "up", "draining", "down")
RUN_STATUSES = ("succeeded", "failed")
JOB_ROW_KINDS = ("read", "inserted", "updated", "unchanged", "deleted", "rejected", "exported")


@dataclass(frozen=True)
class Counts:
    """Running totals the snapshot does not carry."""

    audit_written: int = 0
    audit_failures: int = 0
    idempotency_keys: int = 0
    renewal_failures: int = 0


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bridgehead_requests", "Requests answered, by target, operation and status.",
            ["resource", "operation", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "bridgehead_request_duration_seconds",
            "Time to answer a request (a stream: its end).",
            ["resource", "operation"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.rows = Counter(
            "bridgehead_rows_served", "Rows read or written by requests.",
            ["resource", "operation"], registry=self.registry,
        )  # fmt: skip
        self.job_runs = Counter(
            "bridgehead_job_runs", "Job runs that ended, dry runs included, by job and status.",
            ["job", "status"], registry=self.registry,
        )  # fmt: skip
        self.job_rows = Counter(
            "bridgehead_job_rows", "Rows of job runs (dry runs not counted), by job and kind.",
            ["job", "kind"], registry=self.registry,
        )  # fmt: skip
        self.job_last_success = Gauge(
            "bridgehead_job_last_success_timestamp_seconds",
            "When the job's last run that succeeded (not a dry run) ended, in Unix time.",
            ["job"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(FALLBACK_VALUES)
        self._children: dict[tuple[str, str, int], tuple[Callable[..., None], ...]] = {}

    def observe(self, target: str, operation: str, status: int, seconds: float, rows: int) -> None:
        children = self._children.get((target, operation, status))
        if children is None:
            children = self._children[target, operation, status] = (
                self.requests.labels(target, operation, str(status)).inc,
                self.latency.labels(target, operation).observe,
                self.rows.labels(target, operation).inc,
            )
        count, latency, served = children
        count()
        latency(seconds)
        if rows:
            served(rows)

    def watch(self, read: Callable[[], tuple[Snapshot | None, Counts]]) -> None:
        """Report the state `read` returns at each scrape."""
        self.registry.register(_StateCollector(read))

    def watch_jobs(self, names: Iterable[str], running: Callable[[], set[str]]) -> None:
        """Count the runs of `names` from zero, and report which `running` says are under way."""
        names = list(names)
        for name in names:
            for status in RUN_STATUSES:
                self.job_runs.labels(name, status)
        self.registry.register(_RunningCollector(names, running))

    def observe_run(self, report: Mapping[str, Any]) -> None:
        """A run that ended, from its final report (a dry run adds no rows, no success)."""
        job, dry_run = str(report["job"]), bool(report.get("dry_run"))
        self.job_runs.labels(job, str(report.get("status"))).inc()
        if dry_run:
            return
        for kind in JOB_ROW_KINDS:
            rows = int(report.get(kind) or 0)
            if rows:
                self.job_rows.labels(job, kind).inc(rows)
        finished = report.get("finished")
        if report.get("status") == "succeeded" and finished:
            self.job_last_success.labels(job).set(datetime.fromisoformat(finished).timestamp())


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], tuple[Snapshot | None, Counts]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        snapshot, counts = self.read()
        return list(families(snapshot, counts))


class _RunningCollector(Collector):
    def __init__(self, names: list[str], running: Callable[[], set[str]]) -> None:
        self.names, self.running = names, running

    def collect(self) -> Iterable[Metric]:
        running = self.running()
        gauge = _gauge("bridgehead_job_running", "1 while a run of the job is under way.", ["job"])
        for name in self.names:
            gauge.add_metric([name], float(name in running))
        return [gauge]


def families(snapshot: Snapshot | None, counts: Counts) -> Iterator[Metric]:
    """The scrape-time metric families for a snapshot (None: none taken yet)."""
    yield from _store_families(counts)
    if snapshot is None:
        return
    yield from _source_families(snapshot)
    yield from _tunnel_families(snapshot)
    yield from _certificate_families(snapshot, counts)
    yield from event_families(snapshot.events, snapshot.now)


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _store_families(counts: Counts) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "bridgehead_audit_records_written", "Audit records written and synced.",
        value=counts.audit_written,
    )  # fmt: skip
    yield CounterMetricFamily(
        "bridgehead_audit_write_failures", "Audit batches that failed to write.",
        value=counts.audit_failures,
    )  # fmt: skip
    yield _gauge_value(
        "bridgehead_idempotency_keys", "Idempotency-Keys held.", counts.idempotency_keys
    )


def _gauge_value(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _source_families(snapshot: Snapshot) -> Iterator[Metric]:
    up = _gauge("bridgehead_source_up", "1 when the source answered its last probe.", ["source"])
    latency = _gauge("bridgehead_source_probe_seconds", "Time the last probe took.", ["source"])
    in_use = _gauge("bridgehead_pool_in_use", "Connections leased now.", ["source"])
    size = _gauge("bridgehead_pool_size", "Connections the pool may hold.", ["source"])
    waiting = _gauge("bridgehead_pool_waiting", "Callers waiting for a connection.", ["source"])
    waited = CounterMetricFamily(
        "bridgehead_pool_wait_seconds", "Time callers spent waiting for a connection.",
        labels=["source"],
    )  # fmt: skip
    for source in snapshot.sources:
        up.add_metric([source.name], float(source.up))
        if source.latency is not None:
            latency.add_metric([source.name], source.latency)
        if source.pool is not None:
            in_use.add_metric([source.name], source.pool.in_use)
            size.add_metric([source.name], source.pool.size)
            waiting.add_metric([source.name], source.pool.waiting)
            waited.add_metric([source.name], source.pool.waited)
    yield from (up, latency, in_use, size, waiting, waited)


def _tunnel_families(snapshot: Snapshot) -> Iterator[Metric]:
    tunnel = snapshot.tunnel
    if tunnel is None:
        return
    states = _gauge("bridgehead_tunnel_connections", "Tunnel connections by state.", ["state"])
    for state in TUNNEL_STATES:
        states.add_metric([state], sum(c.state == state for c in tunnel.connections))
    reconnects = CounterMetricFamily(
        "bridgehead_tunnel_reconnects", "Tunnel connections made again after one was lost.",
        value=sum(c.reconnects for c in tunnel.connections),
    )  # fmt: skip
    rtt = _gauge("bridgehead_tunnel_ping_rtt_seconds", "Last PING round trip.", ["connection"])
    for c in tunnel.connections:
        if c.rtt is not None:
            rtt.add_metric([str(c.number)], c.rtt)
    streams = _gauge_value(
        "bridgehead_tunnel_streams_in_flight", "Requests in flight through the tunnel.",
        sum(c.streams for c in tunnel.connections),
    )  # fmt: skip
    yield from (states, reconnects, rtt, streams)


def _certificate_families(snapshot: Snapshot, counts: Counts) -> Iterator[Metric]:
    cert = snapshot.certificate
    if cert is None:
        return
    if cert.not_after is not None:
        yield _gauge_value(
            "bridgehead_certificate_expiry_seconds",
            "Seconds until the tunnel certificate expires (negative: expired).",
            (cert.not_after - snapshot.now).total_seconds(),
        )
    yield CounterMetricFamily(
        "bridgehead_certificate_renewal_failures", "Tunnel certificate renewals that failed.",
        value=counts.renewal_failures,
    )  # fmt: skip
