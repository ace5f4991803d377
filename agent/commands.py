"""What each `bridgehead` subcommand does, kept apart from argument parsing.

`UsageError` (exit 2) and `Failure` (exit 1), in bridgehead.common.commands, carry the one
sentence the CLI prints. What only `check`, `diag`, `enroll` or `demo` use is imported when
that command runs (PLC0415 below), so `run` does not keep it in memory.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from bridgehead.agent.app import Agent
from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.common import logs
from bridgehead.common.commands import UsageError, load_config_or_refuse, serve
from bridgehead.common.config.document import ConfigError


def load(path: Path) -> AgentConfig:
    return load_config_or_refuse(load_config, path)


def run(path: Path) -> int:
    config = load(path)
    logs.apply(config.logging)
    serve([Agent(config, config_file=path.resolve())])
    return 0


def check(path: Path) -> int:
    from bridgehead.agent.check import run_check  # noqa: PLC0415 - see the module comment

    config = load(path)
    ok = asyncio.run(run_check(config, sys.stdout))
    if not ok:
        raise UsageError(f"{path}: the sources do not match the config (see above)")
    return 0


def diag(path: Path, output: Path | None) -> int:
    """Write the support bundle; its path on stdout."""
    from bridgehead.agent.diag import bundle  # noqa: PLC0415 - see the module comment

    try:
        out = output or bundle.default_name(datetime.now(UTC))
        print(asyncio.run(bundle.build(path, out)).resolve())
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise UsageError(f"cannot write the bundle: {exc.strerror or exc}{where}") from None
    return 0


def enroll(token: str, config: Path) -> int:
    from bridgehead.agent.enroll import EnrollRefused, enroll_command  # noqa: PLC0415 - as above

    try:
        print(enroll_command(token, config))
    except EnrollRefused as exc:
        raise UsageError(str(exc)) from None
    return 0


def demo(folder: Path, port: int, relay_port: int) -> int:
    from bridgehead.agent import demo as demo_module  # noqa: PLC0415 - only `demo` runs a relay

    return demo_module.run(folder, port, relay_port)


def demo_change(folder: Path, rows: int) -> int:
    from bridgehead.agent import demo as demo_module  # noqa: PLC0415 - as `demo` above

    return demo_module.change(folder, rows)
