"""Keeps `connections` tunnels to the relay up, forever: dial, serve, back off, dial again.

Never gives up (a relay that is down at start is retried, not fatal), spreads reconnects
with full jitter, and re-reads the certificate files at every dial, so a renewed
certificate is used by the next connection without touching the live ones.

Renewal (agent.tunnel.renewal) runs over these connections: checked every `renew_check`
seconds against the injected `wall_clock`; once a renewed pair is installed the connections
rotate one at a time (each drained, its requests finishing, before the next), and
`renewal_status` shows the certificate's expiry and any failing attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import h2.exceptions
from cryptography import x509

from bridgehead.agent.api.pipeline import Pipeline
from bridgehead.agent.config.model import TunnelConfig
from bridgehead.agent.tunnel import RENEW_CHECK, utc_now
from bridgehead.agent.tunnel.connection import TunnelConnection
from bridgehead.agent.tunnel.proxy import open_via_proxy
from bridgehead.agent.tunnel.renewal import Renewer
from bridgehead.agent.tunnel.slots import ConnectionSlot
from bridgehead.certs.pki import finish_key_pair
from bridgehead.certs.renewal import RenewalStatus
from bridgehead.common.tunnel import ALPN
from bridgehead.common.tunnel.backoff import Backoff

log = logging.getLogger("bridgehead.tunnel")
DIAL_TIMEOUT = 10.0
CERT_CHECK = 30.0
"""Seconds between checks of the certificate files for a renewal."""
STABLE_AFTER = 30.0
"""A connection that lived this long resets the backoff: the next failure retries at once."""


def _stamp(config: TunnelConfig) -> tuple[tuple[int, int], ...]:
    """What changes when a certificate file is replaced: (mtime, size) of each."""
    stats = [path.stat() for path in (config.ca, config.cert, config.key)]
    return tuple((s.st_mtime_ns, s.st_size) for s in stats)


class TunnelRefused(Exception):
    """The relay answered but cannot be used (wrong protocol version); the message says why."""


def client_context(config: TunnelConfig) -> ssl.SSLContext:
    """TLS 1.3 only, trusting only the configured CA, presenting the agent's certificate
    (after completing a certificate swap a killed process left half done)."""
    finish_key_pair(config.cert, config.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=config.ca)
    context.load_cert_chain(config.cert, config.key)
    context.set_alpn_protocols([ALPN])
    return context


def _context_and_serial(config: TunnelConfig) -> tuple[ssl.SSLContext, int | None]:
    """The client context, and the serial of the certificate it presents."""
    context = client_context(config)
    try:
        serial = x509.load_pem_x509_certificate(config.cert.read_bytes()).serial_number
    except (OSError, ValueError):
        serial = None  # replaced meanwhile: the next dial knows
    return context, serial


@dataclass
class TunnelStatus:
    connected: int = 0
    last_error: str | None = None
    slots: dict[int, ConnectionSlot] = field(default_factory=dict)
    """Each kept connection's state, by its number."""


class TunnelClient:
    def __init__(
        self,
        config: TunnelConfig,
        pipeline: Pipeline,
        *,
        max_body: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
        renew_check: float = RENEW_CHECK,
    ) -> None:
        self.config, self.pipeline, self.max_body = config, pipeline, max_body
        self.sleep, self.clock = sleep, clock
        self.renewer = Renewer(config, wall_clock)
        self.renewer.on_renewed = self._renewed
        self.renew_check = renew_check
        self._rotation: asyncio.Task[bool] | None = None
        self.status = TunnelStatus()
        self.live: set[TunnelConnection] = set()
        self.stopping = False
        self._none_live = asyncio.Event()
        self._connected = asyncio.Event()
        self._stamp: tuple[tuple[int, int], ...] = ()

    async def run(self) -> None:
        keepers = [self._keep(n) for n in range(self.config.connections)]
        # return_exceptions: when cancelled, wait for every keeper (and its connection's
        # cleanup) rather than returning as soon as the first child is cancelled.
        watchers = [self._watch_certificates(), self._watch_renewal()]
        await asyncio.gather(*keepers, *watchers, return_exceptions=True)

    def renewal_status(self) -> RenewalStatus:
        """The certificate's expiry and the state of its renewal."""
        return self.renewer.status()

    async def _watch_renewal(self) -> None:
        """Track the certificate in use; every `renew_check` s, wake the renewal if due."""
        try:
            await self.renewer.load()
        except (OSError, ValueError) as exc:
            log.warning("tunnel: cannot read the certificate %s (%s); not renewing it until "
                        "it is replaced", self.config.cert, exc)  # fmt: skip
        while self._dialing():
            await self.renewer.tick()
            await asyncio.sleep(self.renew_check)

    def _renewed(self) -> None:
        """A renewed pair was installed: rotate the connections onto it."""
        if self._rotation is None or self._rotation.done():
            self._rotation = asyncio.create_task(self.rotate_if_renewed())

    async def _watch_certificates(self) -> None:
        """Every CERT_CHECK s, rotate the connections if the certificate files changed. A file
        that cannot be read (briefly missing while it is replaced) is logged once, and the
        watch goes on: the next readable files are compared with the last ones seen."""
        failing = False
        while self._dialing():
            try:
                if self._stamp:
                    await self.rotate_if_renewed()
                else:
                    self._stamp = await asyncio.to_thread(_stamp, self.config)
            except OSError as exc:
                if not failing:
                    log.warning(
                        "tunnel: cannot read the certificate files (%s); still watching", exc
                    )
                failing = True
            else:
                if failing:
                    log.info("tunnel: certificate files readable again")
                failing = False
            await self.sleep(CERT_CHECK)

    async def rotate_if_renewed(self) -> bool:
        """If the certificate files changed, replace the connections one at a time: each is
        drained (its streams finish) and its keeper dials again with the new files."""
        stamp = await asyncio.to_thread(_stamp, self.config)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        log.info("tunnel: certificate files changed; rotating connections")
        with contextlib.suppress(OSError, ValueError):  # unreadable: the dial will say why
            await self.renewer.load()
        await self._replace(list(self.live))
        return True

    async def reconnect(self, number: int | None = None) -> int:
        """Drop and redial connection `number` (every live one when None) one at a time, as
        a rotation does (the admin page's action); how many were dropped."""
        slots = sorted(self.status.slots.items())
        chosen = [s.connection for n, s in slots if number is None or n == number]
        live = [c for c in chosen if c is not None]
        log.info("tunnel: reconnecting %d connection(s) on request", len(live))
        await self._replace(live)
        return len(live)

    async def _replace(self, connections: list[TunnelConnection]) -> None:
        """Drain each connection, then wait for a replacement, before the next."""
        for connection in connections:
            self._connected.clear()
            await connection.drain()
            await connection.closed.wait()
            with contextlib.suppress(TimeoutError):  # the replacement, before the next drain
                await asyncio.wait_for(self._connected.wait(), DIAL_TIMEOUT)

    async def drain(self, grace: float) -> None:
        """Stop dialing, ask every connection to finish its streams, wait up to `grace` s."""
        self.stopping = True
        if self._rotation is not None:
            self._rotation.cancel()
        await asyncio.gather(*(c.drain() for c in list(self.live)), return_exceptions=True)
        if self.live:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_live.wait(), grace)

    async def _keep(self, number: int) -> None:
        backoff = Backoff(base=self.config.backoff.base, cap=self.config.backoff.cap)
        self.status.slots[number] = ConnectionSlot()
        while self._dialing():
            started = self.clock()
            try:
                await self._serve_one(number)
            except (
                OSError, ssl.SSLError, TimeoutError, TunnelRefused, h2.exceptions.ProtocolError,
            ) as exc:  # fmt: skip
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                self.status.slots[number].failed(self.status.last_error, self.clock())
                log.warning("tunnel %d to %s: %s", number, self.config.relay, exc)
            if not self._dialing():
                return
            if self.clock() - started > STABLE_AFTER:
                backoff.reset()
            delay = backoff.next_delay()
            log.info("tunnel %d: reconnecting in %.2f s", number, delay)
            await self.sleep(delay)

    def _dialing(self) -> bool:
        return not self.stopping

    async def _serve_one(self, number: int) -> None:
        reader, writer, serial = await self._dial()
        connection = TunnelConnection(
            reader,
            writer,
            self.pipeline,
            max_body=self.max_body,
            heartbeat=self.config.heartbeat,
            dead_after=self.config.dead_after,
            clock=self.clock,
            renewer=self.renewer,
            max_streams=self.config.max_streams,
        )
        self.live.add(connection)
        self._none_live.clear()
        self._connected.set()
        self.status.connected += 1
        self.status.slots[number].connected(connection, self.clock())
        log.info("tunnel %d: connected to %s (certificate serial %x)", number,
                 self.config.relay, serial or 0)  # fmt: skip
        try:
            await self.renewer.connected(serial)
            await connection.run()
        finally:
            self.renewer.lost(connection)
            self.live.discard(connection)
            if not self.live:
                self._none_live.set()
            self.status.connected -= 1
            self.status.slots[number].closed(self.clock())
        log.info("tunnel %d: connection closed", number)

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int | None]:
        context, serial = await asyncio.to_thread(_context_and_serial, self.config)
        relay = self.config.relay
        reader, writer = await asyncio.wait_for(
            open_via_proxy(relay.host, relay.port, context, self.config.proxy), DIAL_TIMEOUT
        )
        chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if chosen != ALPN:
            writer.close()
            raise TunnelRefused(
                f"the relay does not speak {ALPN} (it chose {chosen!r}); "
                "upgrade the agent or the relay so both speak the same tunnel version"
            )
        return reader, writer, serial
