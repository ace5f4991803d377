"""Keeps `connections` tunnels to the relay up, forever: dial, serve, back off, dial again.

Never gives up (a relay that is down at start is retried, not fatal), spreads reconnects
with full jitter, and re-reads the certificate files at every dial, so a renewed
certificate is used by the next connection without touching the live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridgehead.agent.api.pipeline import Pipeline
from bridgehead.agent.config.model import TunnelConfig
from bridgehead.agent.tunnel.connection import TunnelConnection
from bridgehead.agent.tunnel.proxy import open_via_proxy
from bridgehead.agent.tunnel.slots import ConnectionSlot
from bridgehead.certs.pki import finish_key_pair
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
    ) -> None:
        self.config, self.pipeline, self.max_body = config, pipeline, max_body
        self.sleep, self.clock = sleep, clock
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
        await asyncio.gather(*keepers, self._watch_certificates(), return_exceptions=True)

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
        for connection in list(self.live):
            self._connected.clear()
            await connection.drain()
            await connection.closed.wait()
            with contextlib.suppress(TimeoutError):  # the replacement, before the next drain
                await asyncio.wait_for(self._connected.wait(), DIAL_TIMEOUT)
        return True

    async def drain(self, grace: float) -> None:
        """Stop dialing, ask every connection to finish its streams, wait up to `grace` s."""
        self.stopping = True
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
            except (OSError, ssl.SSLError, TimeoutError, TunnelRefused) as exc:
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
        reader, writer = await self._dial()
        connection = TunnelConnection(
            reader,
            writer,
            self.pipeline,
            max_body=self.max_body,
            heartbeat=self.config.heartbeat,
            dead_after=self.config.dead_after,
            clock=self.clock,
        )
        self.live.add(connection)
        self._none_live.clear()
        self._connected.set()
        self.status.connected += 1
        self.status.slots[number].connected(connection, self.clock())
        log.info("tunnel %d: connected to %s", number, self.config.relay)
        try:
            await connection.run()
        finally:
            self.live.discard(connection)
            if not self.live:
                self._none_live.set()
            self.status.connected -= 1
            self.status.slots[number].closed(self.clock())
        log.info("tunnel %d: connection closed", number)

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = await asyncio.to_thread(client_context, self.config)
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
        return reader, writer
