"""The relay's composition root: agent port, caller port, admin port, the revocation
watcher and the webhook deliveries, started and stopped together; the first failure stops
the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from aiohttp import web

from bridgehead.certs.keyfiles import ensure_private_dir, exposed
from bridgehead.common.config.base import HostPort
from bridgehead.common.config.document import ConfigError
from bridgehead.common.runtime import StartupError
from bridgehead.relay import readiness, redact
from bridgehead.relay.admin import RelayMetrics, admin_app, admin_token
from bridgehead.relay.agents import AgentPort, agent_port_context
from bridgehead.relay.callers import Callers
from bridgehead.relay.config import RelayConfig, load_relay_config
from bridgehead.relay.enrollment import Enrollment
from bridgehead.relay.guard import GuardedSite, port_guard
from bridgehead.relay.registry import Registry
from bridgehead.relay.renewal import RenewalDesk
from bridgehead.relay.revocations import Revocations, watch
from bridgehead.relay.tokens import TokenStore, utc_now
from bridgehead.relay.webhooks.desk import Webhooks

log = logging.getLogger("bridgehead.relay")
SHUTDOWN_GRACE = 10.0


AEAD_ONLY = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"
"""TLS 1.2 suites the caller port offers: forward secret and AEAD, no CBC (LUCKY13); TLS 1.3's
suites are all AEAD."""
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def caller_context(config: RelayConfig) -> ssl.SSLContext:
    """HTTPS for callers; with `callers_ca`, a client certificate from that CA is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = TLS_VERSIONS[config.tls.min_version]
    context.set_ciphers(AEAD_ONLY)
    context.load_cert_chain(config.tls.cert, config.tls.key)
    if config.callers_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=config.callers_ca)
    return context


RELOADABLE = frozenset({"callers", "request_timeout"})
"""What SIGHUP applies in place; every other setting owns a socket, a file or a key."""


class Relay:
    def __init__(
        self,
        config: RelayConfig,
        clock: Callable[[], datetime] = utc_now,
        config_file: Path | None = None,
    ) -> None:
        """`clock`: the time agent certificates are dated by (enrollment and renewal);
        `config_file`: where SIGHUP reads the config again."""
        self.config, self.config_file = config, config_file
        self.callers: Callers | None = None
        self.registry = Registry()
        self.revocations = Revocations(config.state_path)
        self.tokens = TokenStore(config.state_path)
        enrollment = Enrollment(config, self.tokens, clock)
        self.renewal = RenewalDesk(config, self.revocations, clock)
        self.agent_port = AgentPort(
            config, self.registry, self.revocations, enrollment, self.renewal
        )
        self._watcher: asyncio.Task[None] | None = None
        self.metrics = RelayMetrics(self.registry)
        self.webhooks = Webhooks(config.webhooks, self.registry, self.metrics.prometheus, clock)
        self._server: asyncio.Server | None = None
        self._runners: list[web.AppRunner] = []
        self.agents_address: tuple[str, int] | None = None
        self.callers_url: str | None = None
        self.admin_url: str | None = None

    async def start(self) -> None:
        keys = [self.config.tls.key, *([self.config.ca.key] if self.config.ca.key else [])]
        problem = await asyncio.to_thread(exposed, keys)
        if problem is not None:
            raise StartupError(problem)
        redact.install(self)
        try:
            await asyncio.to_thread(ensure_private_dir, self.config.state_path)
            token = await asyncio.to_thread(admin_token, self.config.state_path)
        except OSError as exc:
            raise StartupError(
                f"state_dir {self.config.state_path}: {exc.strerror or exc}; make it a folder "
                "this user can write, or name another with state_dir: in relay.yaml"
            ) from None
        await asyncio.to_thread(self.revocations.reload)
        agents_tls, callers_tls = await asyncio.to_thread(_contexts, self.config)
        where = self.config.agents_listen
        try:
            self._server = await asyncio.start_server(
                self.agent_port.accept, where.host, where.port, ssl=agents_tls
            )
        except OSError as exc:
            raise _cannot_listen("agents_listen", where, exc) from None
        self.agents_address = self._server.sockets[0].getsockname()[:2]
        self.callers = callers = Callers(self.config, self.registry, self.metrics)
        self.callers_url = await self._serve(callers.app(), self.config.listen, callers_tls)
        if self.config.admin is not None:
            unready = partial(readiness.problems, self.config.ca.cert, self.config.state_path)
            admin = admin_app(self.registry, self.metrics, callers.identify, token,
                              self.config.admin, unready=unready,
                              webhooks=self.webhooks)  # fmt: skip
            self.admin_url = await self._serve(admin, self.config.admin, None)
        self._watcher = asyncio.create_task(watch(self.revocations, self.registry))
        await self.webhooks.start()
        log.info("relay: agents on %s, callers on %s", self.agents_address, self.callers_url)

    async def reload(self) -> bool:
        """SIGHUP: read the config file again and apply its callers and request_timeout to
        the next request, the agents' connections untouched; if it does not load, or changes
        anything else, log why and keep the running config."""
        if self.config_file is None or self.callers is None:
            return False
        try:
            new = await asyncio.to_thread(load_relay_config, self.config_file)
        except ConfigError as exc:
            log.error("reload of %s refused; the running config stays: %s", self.config_file, exc)
            return False
        changed = [
            name for name in type(new).model_fields
            if name not in RELOADABLE and getattr(new, name) != getattr(self.config, name)
        ]  # fmt: skip
        if changed:
            log.error(
                "reload of %s refused; the running config stays: %s changed, which needs a "
                "restart", self.config_file, ", ".join(changed),
            )  # fmt: skip
            return False
        self.callers.reconfigure(new)
        self.config = new
        log.info("reload: %s applied (%d callers)", self.config_file, len(new.callers))
        return True

    async def _serve(
        self, app: web.Application, where: HostPort, tls: ssl.SSLContext | None
    ) -> str:
        host, port = where.host, where.port
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        guard = port_guard(self.config.limits, f"port {where}")
        site = GuardedSite(runner, host, port, guard, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.stop()
            raise _cannot_listen("listen or admin", where, exc) from None
        self._runners.append(runner)
        bound = runner.addresses[0]
        return f"{'https' if tls else 'http'}://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        redact.uninstall(self)
        await self.webhooks.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._server is not None:
            self._server.close()
            # End the connections, not the accept callbacks: each returns once its link does.
            for link in self.registry.links():
                link.abort()
            if self.agent_port.tasks:
                await asyncio.wait(self.agent_port.tasks, timeout=SHUTDOWN_GRACE)
            await self._server.wait_closed()
            self._server = None
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


def _contexts(config: RelayConfig) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The agent port's and the caller port's TLS; a file that cannot be loaded is one
    sentence naming it."""
    try:
        return agent_port_context(config), caller_context(config)
    except OSError as exc:  # ssl.SSLError included
        files = f"tls ({config.tls.cert}, {config.tls.key}) or ca.cert ({config.ca.cert})"
        if isinstance(exc, ssl.SSLError):
            reason = "a file is not a PEM certificate, or the key does not match it"
        else:
            reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        raise StartupError(f"cannot load {files}: {reason}; fix the paths in relay.yaml") from None


def _cannot_listen(setting: str, where: HostPort, exc: OSError) -> StartupError:
    return StartupError(
        f"cannot listen on {where}: {exc.strerror or exc}; choose another address with "
        f"{setting}: in relay.yaml",
        runtime=True,
    )
