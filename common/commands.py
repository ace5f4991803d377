"""What every Bridgehead command line shares: its two errors and running services.

`UsageError` (exit 2) and `Failure` (exit 1) carry the one sentence the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bridgehead.common.config.document import ConfigError
from bridgehead.common.runtime import Service, StartupError, run_until_signalled

Config = TypeVar("Config")


class UsageError(Exception):
    """Bad arguments or config: exit code 2."""


class Failure(Exception):
    """The command could not do its job: exit code 1."""


def serve(services: Sequence[Service], on_started: Callable[[], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM; a StartupError becomes a UsageError (exit 2)."""
    try:
        run_until_signalled(services, on_started)
    except StartupError as exc:
        raise (Failure if exc.runtime else UsageError)(str(exc)) from None


def load_config_or_refuse(load: Callable[[Path], Config], path: Path) -> Config:
    """The config `load` reads from `path`, or a UsageError listing every problem in it."""
    try:
        return load(path)
    except ConfigError as exc:
        count = len(exc.problems)
        header = f"{path}: {count} problem{'s' if count != 1 else ''}; fix and retry:"
        raise UsageError(header + "\n" + "\n".join(f"  {p}" for p in exc.problems)) from None
