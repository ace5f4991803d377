"""What the Windows service does, apart from the service control manager (SCM), so it runs
and is tested on any platform; `winservice.BridgeheadService` only forwards to it.

`run()` (SvcRun) reports START_PENDING, loads the config, sends the logs to a rotating file
(the config's `logging.file`, else `logs\\agent.log` beside the config) and to the Windows
event log (warnings, errors and the service's own start and stop lines), starts the agent
with `common.runtime.run_services` and reports RUNNING once it serves. `request_stop()`
(SvcStop) reports STOP_PENDING with a wait hint covering `shutdown_grace` and sets the stop
event the runtime waits on, so a service stop drains exactly as SIGTERM does. When the
drain is over it reports STOPPED: exit code 0, or 1 when the agent could not start or
failed, so the SCM's recovery actions restart it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from bridgehead.agent.app import Agent
from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.common import logs
from bridgehead.common.runtime import Service, StopEvent, run_services

LOGGER = "bridgehead.service"
log = logging.getLogger(LOGGER)
MARGIN_MS = 10_000
"""Added to `shutdown_grace` in the STOP_PENDING wait hint: the stop after the drain."""
START_HINT_MS = 30_000


class Reporter(Protocol):
    """`ReportServiceStatus`: a state name (`START_PENDING`, `RUNNING`, `STOP_PENDING`,
    `STOPPED`), how long until the next report (ms), and the exit code."""

    def __call__(self, state: str, wait_hint_ms: int = 0, exit_code: int = 0) -> None: ...


MakeServices = Callable[[AgentConfig, Path], Sequence[Service]]


def agent_services(config: AgentConfig, config_file: Path) -> Sequence[Service]:
    return [Agent(config, config_file=config_file)]


class ScmLifecycle:
    """The runtime's `Lifecycle`, told to the SCM instead of systemd."""

    def __init__(self, report: Reporter, stop_hint_ms: int, stop: StopEvent) -> None:
        self.report, self.stop_hint_ms, self.stop = report, stop_hint_ms, stop

    def ready(self, status: str) -> None:
        if not self.stop.is_set():  # a stop asked for while starting: no RUNNING after it
            self.report("RUNNING")
        log.info("Bridgehead service %s", status)

    def stopping(self, status: str) -> None:
        self.report("STOP_PENDING", self.stop_hint_ms)
        log.info("Bridgehead service %s", status)

    async def keep_alive(self) -> None:
        """The SCM asks for no pings."""


class ServiceHost:
    def __init__(
        self,
        config_file: Path,
        report: Reporter,
        *,
        event_log: logging.Handler | None = None,
        make_services: MakeServices = agent_services,
    ) -> None:
        self.config_file = config_file
        self.report = report
        self.event_log = event_log
        self.make_services = make_services
        self.stop = StopEvent()
        self.stop_hint_ms = 30_000 + MARGIN_MS

    def run(self) -> int:
        """Serve until `request_stop`; the exit code reported with STOPPED."""
        self.report("START_PENDING", START_HINT_MS)
        self._event_log_on()  # before the config loads, so its problems reach the event log
        try:
            config = load_config(self.config_file)
            self.stop_hint_ms = int(config.shutdown_grace * 1000) + MARGIN_MS
            self._logging(config)
            services = self.make_services(config, self.config_file)
            lifecycle = ScmLifecycle(self.report, self.stop_hint_ms, self.stop)
            run_services(services, self.stop, notifier=lifecycle)
        except Exception as exc:
            log.error("Bridgehead service stopped: %s", exc)
            self.report("STOPPED", exit_code=1)
            return 1
        log.info("Bridgehead service stopped")
        self.report("STOPPED")
        return 0

    def request_stop(self) -> None:
        """SvcStop (and SvcShutdown): drain as SIGTERM would."""
        self.report("STOP_PENDING", self.stop_hint_ms)
        self.stop.set()

    def _logging(self, config: AgentConfig) -> None:
        settings = config.logging
        if settings.file is None:
            settings = settings.model_copy(
                update={"file": self.config_file.parent / "logs/agent.log"}
            )
        logs.apply(settings)
        self._event_log_on()

    def _event_log_on(self) -> None:
        root = logging.getLogger()
        if self.event_log is not None and self.event_log not in root.handlers:
            self.event_log.setFormatter(logs.formatter(json=False))
            self.event_log.filters[:] = [_for_event_log]
            root.addHandler(self.event_log)


def _for_event_log(record: logging.LogRecord) -> bool:
    """Warnings and errors, and the service's start and stop lines."""
    return record.levelno >= logging.WARNING or record.name == LOGGER
