"""The composition root: builds the adapters, catalog, pipeline and listener, starts and stops them.

Start-up fails fast on what the operator must fix (a table or column that does not exist);
a source that is merely unreachable is logged and retried on first use, so the agent comes
up even while a database is down. An expired tunnel certificate is such a fix: it is
refused at start with the commands that get a new one. Shutdown is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bridgehead.adapters.base import Adapter
from bridgehead.agent.admin.metrics import AgentMetrics
from bridgehead.agent.admin.monitor import Monitor
from bridgehead.agent.admin.observer import ObservedAudit, ReasonCatcher, RequestObserver
from bridgehead.agent.admin.page import PageFiles
from bridgehead.agent.admin.runs import RunWatcher
from bridgehead.agent.admin.server import admin_app
from bridgehead.agent.admin.status import About
from bridgehead.agent.admin.window import RequestWindow
from bridgehead.agent.api.auth import ApiKeys, Authenticator
from bridgehead.agent.api.cursor import CursorCodec
from bridgehead.agent.api.idempotency import IdempotencyStore
from bridgehead.agent.api.pipeline import VERSION, Pipeline
from bridgehead.agent.api.ratelimit import RateLimiter
from bridgehead.agent.api.replay import Replayer
from bridgehead.agent.api.writes import WriteLimits
from bridgehead.agent.audit import AuditError, AuditLog
from bridgehead.agent.catalog import Catalog, CatalogProblem
from bridgehead.agent.config import load_config
from bridgehead.agent.config.model import AgentConfig, ListenConfig
from bridgehead.agent.events.service import Events
from bridgehead.agent.http import make_app, server_ssl
from bridgehead.agent.jobs.runner import Jobs
from bridgehead.agent.listener import GuardedSite, listener_guard
from bridgehead.agent.reload import needs_restart
from bridgehead.agent.sources import build_adapters, open_sources
from bridgehead.agent.tunnel import RENEW_CHECK, utc_now
from bridgehead.certs.keyfiles import ensure_private_dir, exposed, load_or_create_secret
from bridgehead.common.config.base import HostPort
from bridgehead.common.config.document import ConfigError
from bridgehead.common.guard import Guard
from bridgehead.common.runtime import StartupError

if TYPE_CHECKING:
    from bridgehead.agent.tunnel.client import TunnelClient

# The tunnel's and JWT's modules (and with them cryptography, h2: ~13 MiB) are imported only
# where the config has a tunnel: or an auth.jwt: (PLC0415 below).

log = logging.getLogger("bridgehead.agent")
SHUTDOWN_GRACE = 10.0


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        config_file: Path | None = None,
        loaded_at: datetime | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
        renew_check: float = RENEW_CHECK,
    ) -> None:
        """`wall_clock` dates the tunnel certificate's expiry and renewal; `renew_check` is
        how often (s) renewal is checked for being due."""
        self.config = config
        self.wall_clock, self.renew_check = wall_clock, renew_check
        self.config_file = config_file
        self.loaded_at = loaded_at or datetime.now(UTC)
        self.metrics = AgentMetrics()
        self.observer = RequestObserver(config, self.metrics, RequestWindow(), ReasonCatcher())
        self._admin_runner: web.AppRunner | None = None
        self._monitor: Monitor | None = None
        self.admin_url: str | None = None
        self.adapters: dict[str, Adapter] = {}
        self._runner: web.AppRunner | None = None
        self._guards: dict[str, Guard] = {}
        self._store: IdempotencyStore | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self._audit: AuditLog | None = None
        self.tunnel: TunnelClient | None = None
        self._tunnel_task: asyncio.Task[None] | None = None
        self.listen_url: str | None = None
        self.pipeline: Pipeline | None = None
        self.jobs: Jobs | None = None
        self.events: Events | None = None
        self._runs: RunWatcher | None = None

    async def start(self) -> None:
        await self._refuse_unsafe_files()
        state, cursors = await self._open_state()
        self.adapters = build_adapters(self.config)
        for name, error in (await open_sources(self.adapters)).items():
            log.warning("source %s is not reachable yet (%s); will retry", name, error.internal)
        catalog = await self._catalog(self.config)
        store, audit = await self._open_stores(state)
        try:
            reloadable = await _reloadable(self.config)
        except ValueError as exc:
            await self.stop()
            raise StartupError(str(exc)) from None
        self.pipeline = Pipeline(
            catalog=catalog, cursors=cursors, replayer=Replayer(store),
            audit=ObservedAudit(audit, self.observer), config=self.config, **reloadable,
        )  # fmt: skip
        logging.getLogger("bridgehead").addHandler(self.observer.reasons)
        if self.config.jobs:  # made before the admin page, which shows them; run once serving
            pipeline = self.pipeline
            self.jobs = pipeline.jobs = Jobs(
                self.config.jobs, lambda: pipeline.catalog, state, queries=self.config.queries
            )
            self._runs = RunWatcher(self.jobs, self.metrics, audit)  # figures and audit records
            self.jobs.listeners.append(self._runs)
        if any(r.events is not None for r in self.config.resources.values()):
            pipeline = self.pipeline
            source = f"bridgehead://agent/{await asyncio.to_thread(self._agent_id)}"
            self.events = pipeline.events = Events(
                self.config, lambda: pipeline.catalog, state, source
            )
            await self.events.start()  # its log is open before any consumer can ask
        await self._serve(self.pipeline, store, audit)
        if self.jobs is not None:
            await self.jobs.start()

    def _agent_id(self) -> str:
        """This agent's id: its tunnel certificate's, or else the machine's name."""
        if self.config.tunnel is not None:
            from bridgehead.agent.tunnel.renewal import read_certificate  # noqa: PLC0415
            from bridgehead.certs.pki import Identity  # noqa: PLC0415 - see the imports

            try:
                certificate = read_certificate(self.config.tunnel.cert)
                return Identity.from_certificate(certificate).agent_id
            except (OSError, ValueError):
                pass
        return socket.gethostname()

    async def _refuse_unsafe_files(self) -> None:
        problem = await asyncio.to_thread(exposed, _private_keys(self.config))
        if problem is None and self.config.tunnel is not None:
            from bridgehead.agent.tunnel.renewal import expired_certificate  # noqa: PLC0415

            now = self.wall_clock()
            problem = await asyncio.to_thread(expired_certificate, self.config.tunnel, now)
        if problem is not None:
            raise StartupError(problem)

    async def _open_state(self) -> tuple[Path, CursorCodec]:
        try:
            state = await asyncio.to_thread(ensure_private_dir, self.config.state_path)
            key = await asyncio.to_thread(load_or_create_secret, state / "cursor.key")
        except OSError as exc:
            raise StartupError(
                f"state_dir {self.config.state_path}: {exc.strerror or exc}; make it a folder "
                "this user can write, or name another with state_dir: in the config"
            ) from None
        return state, CursorCodec(key)

    async def _catalog(self, config: AgentConfig) -> Catalog:
        catalog = Catalog(config.resources, self.adapters)
        problems = await catalog.load()
        if problems:
            await self.stop()
            raise StartupError(_describe(problems))
        return catalog

    async def _open_stores(self, state: Path) -> tuple[IdempotencyStore, AuditLog]:
        settings = self.config.idempotency
        store = self._store = IdempotencyStore(
            state / "idempotency.db", settings.ttl, max_keys=settings.max_keys_per_principal
        )
        await store.open()
        self._expiry_task = asyncio.create_task(store.run_expiry())
        audit = self._audit = AuditLog(state / "audit.log")
        try:
            await audit.start()
        except AuditError as exc:
            await self.stop()
            raise StartupError(str(exc)) from None
        return store, audit

    async def _serve(self, pipeline: Pipeline, store: IdempotencyStore, audit: AuditLog) -> None:
        if self.config.listen is not None:
            await self._listen(pipeline)
        if self.config.tunnel is not None:
            from bridgehead.agent.tunnel.client import TunnelClient  # noqa: PLC0415

            self.tunnel = TunnelClient(
                self.config.tunnel, pipeline, max_body=self.config.limits.max_body_bytes,
                wall_clock=self.wall_clock, renew_check=self.renew_check,
            )  # fmt: skip
            self._tunnel_task = asyncio.create_task(self.tunnel.run())
        if self.config.admin is not None:
            await self._serve_admin(store, audit)

    async def reload(self) -> bool:
        """SIGHUP: read the config file again and serve the next request by it; if it does
        not load, or changes what needs a restart, log every reason and keep the old one."""
        if self.config_file is None or self.pipeline is None:
            return False
        try:
            new = await asyncio.to_thread(load_config, self.config_file)
            refused = needs_restart(self.config, new)
            if refused:
                raise ValueError(f"{', '.join(refused)} changed, which needs a restart")
            catalog = Catalog(new.resources, self.adapters)
            problems = await catalog.load()
            if problems:
                raise ValueError(_describe(problems))
            reloadable = await _reloadable(new)
        except (ConfigError, ValueError) as exc:
            log.error("reload of %s refused; the running config stays: %s", self.config_file, exc)
            return False
        self.pipeline.reconfigure(config=new, catalog=catalog, **reloadable)
        self.config = new
        log.info("reload: %s applied", self.config_file)
        return True

    async def _listen(self, pipeline: Pipeline) -> None:
        assert self.config.listen is not None
        address = self.config.listen.address
        limits = self.config.limits
        app = make_app(pipeline, limits.max_body_bytes, limits.body_idle_timeout)
        # handler_cancellation: a caller that disconnects cancels its handler, and so its query.
        # The guard's handlers take the keep-alive timeout and log no access lines.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True,
            shutdown_timeout=self.config.shutdown_grace,
        )  # fmt: skip
        await self._runner.setup()
        try:
            tls = server_ssl(self.config.listen)
        except OSError as exc:  # ssl.SSLError included
            await self.stop()
            raise StartupError(_tls_problem(self.config.listen, exc)) from None
        self.listen_url = await self._bind(self._runner, address, "listen", tls)
        log.info("listening on %s", self.listen_url)

    async def _serve_admin(self, store: IdempotencyStore, audit: AuditLog) -> None:
        """The admin listener (agent.admin), behind the local listener's connection guard."""
        assert self.config.admin is not None
        events = self.events
        monitor = self._monitor = Monitor(
            self.config, self.adapters, audit, store, self.tunnel,
            events=None if events is None else lambda: events.log,
        )  # fmt: skip
        self.metrics.watch(lambda: (monitor.last, monitor.counts()))
        started = datetime.now(UTC)
        file = None if self.config_file is None else str(self.config_file)
        about = About(VERSION, file, self.loaded_at, started)
        files = await asyncio.to_thread(PageFiles.load)
        digest = self.config.admin.digest
        app = admin_app(
            monitor, self.metrics, self.observer, about, digest, files=files, jobs=self.jobs
        )
        self._admin_runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._admin_runner.setup()
        self.admin_url = await self._bind(self._admin_runner, self.config.admin.address, "admin")
        log.info("admin page on %s", self.admin_url)

    async def _bind(
        self, runner: web.AppRunner, address: HostPort, key: str, tls: ssl.SSLContext | None = None
    ) -> str:
        """Start `runner` on `address` (the config's `key:`) and return its URL."""
        guard = self._guards[key] = listener_guard(self.config.limits, f"{key} {address}")
        site = GuardedSite(runner, address.host, address.port, guard, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise StartupError(
                f"cannot listen on {address}: {exc.strerror}; "
                f"choose another address with {key}: in the config",
                runtime=True,
            ) from None
        port = runner.addresses[0][1] if runner.addresses else address.port
        host = f"[{address.host}]" if ":" in address.host else address.host
        return f"{'https' if tls else 'http'}://{host}:{port}"

    async def _drain_tunnel(self) -> None:
        """GOAWAY on every tunnel connection; requests in flight get `shutdown_grace`."""
        if self._tunnel_task is not None and self.tunnel is not None:
            await self.tunnel.drain(self.config.shutdown_grace)
            self._tunnel_task.cancel()
            await asyncio.gather(self._tunnel_task, return_exceptions=True)
            self._tunnel_task = None

    async def _drain_listener(self) -> None:
        """Stop accepting; requests and streams in flight get `shutdown_grace`, then are cut."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            grace = self.config.shutdown_grace
            deadline = asyncio.get_running_loop().time() + grace + 5
            with contextlib.suppress(TimeoutError):  # aiohttp cuts them at shutdown_grace
                await asyncio.wait_for(runner.cleanup(), grace + 5)
            guard = self._guards.get("listen")
            left = deadline - asyncio.get_running_loop().time()
            if guard is not None:  # a finished stream's last bytes may still be queued
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(guard.all_closed(), max(0.0, left))

    async def stop(self) -> None:
        logging.getLogger("bridgehead").removeHandler(self.observer.reasons)
        if self.jobs is not None:  # runs under way keep their checkpoints and resume
            await self.jobs.stop()
            self.jobs = None
        if self.events is not None:  # a batch not yet in the log is captured again
            await self.events.stop()
        if self._runs is not None:  # the last runs' audit records, queued before it closes
            await self._runs.close()
            self._runs = None
        if self._admin_runner is not None:
            await asyncio.wait_for(self._admin_runner.cleanup(), SHUTDOWN_GRACE)
            self._admin_runner = None
        if self._monitor is not None:
            await self._monitor.close()
            self._monitor = None
        await asyncio.gather(self._drain_tunnel(), self._drain_listener())
        if self.events is not None:  # after the last request that reads its log
            await self.events.close()
            self.events = None
        await asyncio.gather(*(a.close() for a in self.adapters.values()))
        if self._audit is not None:
            audit, self._audit = self._audit, None
            try:
                await audit.close()
            except AuditError as exc:
                log.error("audit log: %s", exc)
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            await asyncio.gather(self._expiry_task, return_exceptions=True)
            self._expiry_task = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def _tls_problem(listen: ListenConfig, exc: Exception) -> str:
    assert listen.tls is not None
    files = f"{listen.tls.cert} and {listen.tls.key}"
    if isinstance(exc, ssl.SSLError):  # an OSError too: first
        reason = "they are not a PEM certificate and its private key"
    elif isinstance(exc, OSError):
        reason = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    else:
        reason = str(exc)
    return f"listen.tls: cannot load {files}: {reason}; fix the paths in listen.tls"


def _describe(problems: list[CatalogProblem]) -> str:
    lines = "\n".join(f"  {p}" for p in problems)
    return f"the config does not match the database; fix these and run bridgehead check:\n{lines}"


def _private_keys(config: AgentConfig) -> list[Path]:
    keys = [config.state_path / "cursor.key"]
    if config.listen is not None and config.listen.tls is not None:
        keys.append(config.listen.tls.key)
    if config.tunnel is not None:
        keys.append(config.tunnel.key)
    return keys


async def _reloadable(config: AgentConfig) -> dict[str, Any]:
    """The pipeline's parts a reload replaces: authentication and the request limits.
    ValueError (one sentence) if the JWT settings cannot be used."""
    jwt = None
    if config.auth.jwt is not None:
        from bridgehead.agent.api.jwt_auth import JwtVerifier  # noqa: PLC0415 - see the imports

        try:
            jwt = await asyncio.to_thread(JwtVerifier.from_file, config.auth.jwt)
        except ValueError as exc:
            raise ValueError(f"auth.jwt: {exc}") from None
    limits = config.limits
    return {
        "authenticator": Authenticator(ApiKeys(config.auth.api_keys), jwt),
        "limiter": RateLimiter(limits.requests_per_second, limits.burst),
        "auth_failures": RateLimiter(limits.failed_auth_per_second, limits.failed_auth_burst),
        "write_limits": WriteLimits(max_rows=limits.max_write_rows),
    }
