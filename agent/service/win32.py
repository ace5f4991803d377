"""The Windows-only calls, behind `windows.ServiceManager` and `host.Reporter`: the service
control manager through pywin32 (`win32service`, `win32serviceutil`), imported inside each
method so this module imports everywhere. None of it runs on Linux; it is exercised by
installing on Windows (packaging/windows/README.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bridgehead.agent.service.windows import ServiceSpec
from bridgehead.common.service_steps import run_command

T = TypeVar("T")
STATES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING",
          5: "CONTINUE_PENDING", 6: "PAUSE_PENDING", 7: "PAUSED"}  # fmt: skip
"""`SERVICE_STOPPED`... by value, as `QueryServiceStatus` returns them."""
NOT_INSTALLED = 1060  # ERROR_SERVICE_DOES_NOT_EXIST
STOP_WAIT = 120  # seconds `uninstall` waits for the drain


def _scm(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # pragma: no cover
    """`call`, its pywin32 error turned into one sentence naming `what`."""
    import pywintypes  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415 - Windows

    try:
        return call(*args, **kwargs)
    except pywintypes.error as exc:
        raise RuntimeError(f"{what} failed: {exc.strerror} (error {exc.winerror})") from None


class Win32ServiceManager:  # pragma: no cover - Windows only
    def create(self, spec: ServiceSpec, password: str | None) -> None:
        import win32service  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415
        import win32serviceutil  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415

        from bridgehead.agent.service import winservice  # noqa: PLC0415 - Windows only

        _scm("creating the service", win32serviceutil.InstallService,
             win32serviceutil.GetServiceClassString(winservice.BridgeheadService),
             spec.name, spec.display_name, startType=win32service.SERVICE_AUTO_START,
             userName=spec.account, password=password, description=spec.description,
             delayedstart=spec.delayed_start)  # fmt: skip
        _scm("recording the config path", win32serviceutil.SetServiceCustomOption,
             spec.name, "config", str(spec.config_file))  # fmt: skip
        _scm("registering the event log source", _event_source, spec.name, True)

    def configure_recovery(self, name: str, delays: Sequence[int], reset_after: int) -> None:
        import win32service  # noqa: PLC0415

        actions = [(win32service.SC_ACTION_RESTART, seconds * 1000) for seconds in delays]
        failure = {"ResetPeriod": reset_after, "RebootMsg": "", "Command": "", "Actions": actions}
        manager = _scm("opening the SCM", win32service.OpenSCManager, None, None,
                       win32service.SC_MANAGER_ALL_ACCESS)  # fmt: skip
        try:
            service = _scm("opening the service", win32service.OpenService, manager, name,
                           win32service.SERVICE_ALL_ACCESS)  # fmt: skip
            try:
                _scm("setting recovery", win32service.ChangeServiceConfig2, service,
                     win32service.SERVICE_CONFIG_FAILURE_ACTIONS, failure)  # fmt: skip
                # a non-zero exit code reported with STOPPED counts as a failure too
                _scm("setting recovery", win32service.ChangeServiceConfig2, service,
                     win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True)  # fmt: skip
            finally:
                win32service.CloseServiceHandle(service)
        finally:
            win32service.CloseServiceHandle(manager)

    def start(self, name: str) -> None:
        import win32serviceutil  # noqa: PLC0415

        _scm("starting the service", win32serviceutil.StartService, name)

    def stop(self, name: str) -> None:
        import win32service  # noqa: PLC0415
        import win32serviceutil  # noqa: PLC0415

        _scm("stopping the service", win32serviceutil.StopService, name)
        _scm("waiting for the drain", win32serviceutil.WaitForServiceStatus, name,
             win32service.SERVICE_STOPPED, STOP_WAIT)  # fmt: skip

    def delete(self, name: str) -> None:
        import win32serviceutil  # noqa: PLC0415

        _scm("removing the service", win32serviceutil.RemoveService, name)
        _scm("removing the event log source", _event_source, name, False)

    def query(self, name: str) -> str | None:
        import pywintypes  # noqa: PLC0415
        import win32serviceutil  # noqa: PLC0415

        try:
            status = win32serviceutil.QueryServiceStatus(name)
        except pywintypes.error as exc:
            if exc.winerror == NOT_INSTALLED:
                return None
            raise RuntimeError(f"querying the service failed: {exc.strerror}") from None
        return STATES.get(status[1], str(status[1]))

    def run_command(self, argv: Sequence[str]) -> None:
        run_command(argv)


def _event_source(name: str, add: bool) -> None:  # pragma: no cover - Windows only
    """The Application log's source `name`, with the messages `NTEventLogHandler` uses."""
    import win32evtlogutil  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415
    import win32service  # noqa: PLC0415

    if not add:
        win32evtlogutil.RemoveSourceFromRegistry(name)
        return
    messages = win32service.__file__  # win32service.pyd holds the message table
    win32evtlogutil.AddSourceToRegistry(name, messages, "Application")
