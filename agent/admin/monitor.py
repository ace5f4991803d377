"""Takes a `Snapshot` of the running agent's parts: each source probed, the audit log's and
the idempotency store's state, the tunnel client's connections, the tunnel certificate, the
event log's consumers (when the agent captures events).

Rules: every probe is bounded by a short timeout and runs through the part's own pool or
thread (never on the loop); callers arriving while a snapshot is being taken share it, and
one younger than `fresh_for` seconds is served as is, so a burst of /readyz, /status.json
and /metrics calls costs one round of probes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.probe import PROBE_TIMEOUT, pool_stats, probe
from bridgehead.agent.admin.events import EventsState, events_state
from bridgehead.agent.admin.metrics import Counts
from bridgehead.agent.admin.status import (
    CertificateState,
    ConnectionState,
    Snapshot,
    SourceState,
    TunnelState,
)
from bridgehead.agent.api.idempotency import IdempotencyStore
from bridgehead.agent.audit import AuditLog
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.events.log import EventLog

if TYPE_CHECKING:
    from bridgehead.agent.tunnel.client import TunnelClient

FRESH_FOR = 1.0


def read_certificate(path: Path) -> CertificateState:
    """The tunnel certificate's subject, agent id and expiry (blocking: run on a thread)."""
    # Imported here, where a tunnel is configured: cryptography costs ~15 MiB resident.
    from cryptography import x509  # noqa: PLC0415 - see above

    from bridgehead.certs.pki import Identity  # noqa: PLC0415 - see above

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return CertificateState(None, None, None, f"{path}: {exc}")
    try:
        agent_id: str | None = Identity.from_certificate(cert).agent_id
    except ValueError:
        agent_id = None
    return CertificateState(cert.subject.rfc4514_string(), agent_id, cert.not_valid_after_utc)


class Monitor:
    def __init__(
        self,
        config: AgentConfig,
        adapters: Mapping[str, Adapter],
        audit: AuditLog,
        store: IdempotencyStore,
        tunnel: TunnelClient | None,
        *,
        probe_timeout: float = PROBE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
        events: Callable[[], EventLog | None] | None = None,
    ) -> None:
        """`events` gives the open event log (None while it is closed); None: no events."""
        self.config, self.adapters, self.audit, self.store = config, adapters, audit, store
        self.events = events
        self.tunnel, self.probe_timeout = tunnel, probe_timeout
        self.clock, self.wallclock = clock, wallclock
        self.last: Snapshot | None = None
        self._taken_at = -float("inf")
        self._taking: asyncio.Task[Snapshot] | None = None
        self._source_errors: dict[str, str] = {}

    async def snapshot(self, fresh_for: float = FRESH_FOR) -> Snapshot:
        if self.last is not None and self.clock() - self._taken_at < fresh_for:
            return self.last
        if self._taking is None or self._taking.done():
            self._taking = asyncio.create_task(self._take())
        return await asyncio.shield(self._taking)

    async def close(self) -> None:
        """Stop a round of probes still running (the agent is stopping)."""
        if self._taking is not None and not self._taking.done():
            self._taking.cancel()
            await asyncio.gather(self._taking, return_exceptions=True)

    def counts(self) -> Counts:
        renewals = self.tunnel.renewal_status().failures if self.tunnel is not None else 0
        return Counts(self.audit.written, self.audit.failures, self.store.size, renewals)

    async def _take(self) -> Snapshot:
        sources = asyncio.gather(*(self._source(n, a) for n, a in self.adapters.items()))
        store = self._store_failure()
        cert = self._certificate()
        found_sources, store_failure, certificate, events = await asyncio.gather(
            sources, store, cert, self._events()
        )
        snapshot = Snapshot(
            now=self.wallclock(),
            sources=tuple(found_sources),
            audit_failure=self.audit.failure,
            store_failure=store_failure,
            tunnel=self._tunnel(),
            certificate=certificate,
            events=events,
        )
        self.last, self._taken_at = snapshot, self.clock()
        return snapshot

    async def probe_now(self, name: str) -> SourceState:
        """Probe one source at once, outside the shared rounds (the page's test button)."""
        return await self._source(name, self.adapters[name])

    async def _source(self, name: str, adapter: Adapter) -> SourceState:
        result = await probe(adapter, self.probe_timeout)
        if result.error is not None:
            self._source_errors[name] = result.error
        try:
            dbms: str | None = adapter.dialect.name
        except RuntimeError:
            dbms = None
        return SourceState(
            name=name,
            driver=self.config.sources[name].adapter,
            dbms=dbms,
            probe_error=result.error,
            latency=result.latency,
            pool=pool_stats(adapter),
            last_error=self._source_errors.get(name),
            version=adapter.server_version,
        )

    async def _store_failure(self) -> str | None:
        try:
            async with asyncio.timeout(self.probe_timeout):
                await self.store.check_writable()
        except TimeoutError:
            return f"no write finished within {self.probe_timeout:g} s"
        except Exception as exc:  # sqlite3.Error, OSError, closed: each a reason to report
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _certificate(self) -> CertificateState | None:
        if self.config.tunnel is None:
            return None
        state = await asyncio.to_thread(read_certificate, self.config.tunnel.cert)
        if self.tunnel is None:
            return state
        renewal = self.tunnel.renewal_status()
        return replace(
            state,
            renewal_due=renewal.due_at,
            renewal_attempts=renewal.attempts,
            renewal_error=renewal.last_error,
            next_renewal=renewal.next_attempt,
        )

    async def _events(self) -> EventsState | None:
        log = self.events() if self.events is not None else None
        if log is None:
            return None
        try:
            return await asyncio.to_thread(events_state, log, self.config.events.backlog_warning)
        except sqlite3.ProgrammingError:  # the log closed under it: the agent is stopping
            return None

    def _tunnel(self) -> TunnelState | None:
        if self.tunnel is None or self.config.tunnel is None:
            return None
        now, wall = self.tunnel.clock(), self.wallclock()
        connections = []
        for number, slot in sorted(self.tunnel.status.slots.items()):
            live = slot.connection
            state = "draining" if live is not None and live.draining else slot.state
            since = None if slot.since is None else wall - timedelta(seconds=now - slot.since)
            connections.append(ConnectionState(
                number, state, since, live.liveness.rtt if live is not None else None,
                slot.reconnects, slot.last_error, len(live.streams) if live is not None else 0,
            ))  # fmt: skip
        return TunnelState(str(self.config.tunnel.relay), tuple(connections))
