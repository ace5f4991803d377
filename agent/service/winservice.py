"""The `Bridgehead` Windows service class, as pywin32's `pythonservice.exe` hosts it.

Importable only on Windows (it subclasses `win32serviceutil.ServiceFramework`); it only
forwards to `host.ServiceHost`, where the behaviour is, and tells the SCM what the host
reports. The config path is the service's `config` option, written by `service install`.
"""

from __future__ import annotations

import logging.handlers
from pathlib import Path
from typing import Any

import win32service  # type: ignore[import-not-found,import-untyped,unused-ignore]
import win32serviceutil  # type: ignore[import-not-found,import-untyped,unused-ignore]

from bridgehead.agent.service import windows
from bridgehead.agent.service.host import ServiceHost

SERVICE_SPECIFIC_ERROR = 1066  # ERROR_SERVICE_SPECIFIC_ERROR: see the service's exit code


class BridgeheadService(win32serviceutil.ServiceFramework):  # type: ignore[misc,unused-ignore]  # pragma: no cover
    _svc_name_ = windows.NAME
    _svc_display_name_ = windows.DISPLAY_NAME
    _svc_description_ = windows.DESCRIPTION

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        default = str(windows.data_folder() / "agent.yaml")
        config = win32serviceutil.GetServiceCustomOption(windows.NAME, "config", default)
        self.host = ServiceHost(Path(config), self._report, event_log=_event_log())

    def _report(self, state: str, wait_hint_ms: int = 0, exit_code: int = 0) -> None:
        self.ReportServiceStatus(
            getattr(win32service, f"SERVICE_{state}"),
            waitHint=wait_hint_ms,
            win32ExitCode=SERVICE_SPECIFIC_ERROR if exit_code else 0,
            svcExitCode=exit_code,
        )

    def GetAcceptedControls(self) -> int:
        accepted = int(super().GetAcceptedControls())
        return accepted | int(win32service.SERVICE_ACCEPT_SHUTDOWN)

    def SvcRun(self) -> None:
        self.host.run()

    def SvcStop(self) -> None:
        self.host.request_stop()

    def SvcShutdown(self) -> None:
        self.host.request_stop()


def _event_log() -> logging.Handler | None:  # pragma: no cover - Windows only
    """The Application log (source registered by `service install`); None if it cannot be
    opened, so the service still runs, logging to its file."""
    try:
        return logging.handlers.NTEventLogHandler(windows.NAME)
    except Exception:
        return None
