"""What each `bridgehead` subcommand does, kept apart from argument parsing.

`UsageError` (exit 2) and `Failure` (exit 1), in bridgehead.common.commands, carry the one
sentence the CLI prints.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bridgehead.agent.app import Agent
from bridgehead.agent.check import run_check
from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.common import logs
from bridgehead.common.commands import UsageError, serve
from bridgehead.common.config.document import ConfigError


def usage_error(path: Path, exc: ConfigError) -> UsageError:
    """A config's problems as the one message the CLI prints (exit 2)."""
    count = len(exc.problems)
    header = f"{path}: {count} problem{'s' if count != 1 else ''}; fix and retry:"
    return UsageError(header + "\n" + "\n".join(f"  {p}" for p in exc.problems))


def load(path: Path) -> AgentConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise usage_error(path, exc) from None


def run(path: Path) -> int:
    config = load(path)
    logs.configure()
    serve([Agent(config)])
    return 0


def check(path: Path) -> int:
    config = load(path)
    ok = asyncio.run(run_check(config, sys.stdout))
    if not ok:
        raise UsageError(f"{path}: the sources do not match the config (see above)")
    return 0


def demo(folder: Path, port: int, relay_port: int) -> int:
    from bridgehead.agent import demo as demo_module  # noqa: PLC0415 - only `demo` runs a relay

    return demo_module.run(folder, port, relay_port)
