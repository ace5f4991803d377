"""What each `bridgehead` subcommand does, kept apart from argument parsing.

`UsageError` (exit 2) and `Failure` (exit 1) carry the one sentence the CLI prints.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from agent import logs
from agent.app import Agent, StartupError
from agent.check import run_check
from agent.config import AgentConfig, ConfigError, load_config


class UsageError(Exception):
    """Bad arguments or config: exit code 2."""


class Failure(Exception):
    """The command could not do its job: exit code 1."""


def load(path: Path) -> AgentConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        count = len(exc.problems)
        header = f"{path}: {count} problem{'s' if count != 1 else ''}; fix and retry:"
        raise UsageError(header + "\n" + "\n".join(f"  {p}" for p in exc.problems)) from None


def run(path: Path) -> int:
    config = load(path)
    logs.configure()
    serve(Agent(config))
    return 0


def serve(agent: Agent, announce: str | None = None) -> None:
    """Run until SIGINT or SIGTERM; StartupError becomes a UsageError."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await agent.start()
        if announce:
            print(announce.format(url=agent.listen_url), flush=True)
        try:
            await stop.wait()
        finally:
            await agent.stop()

    try:
        asyncio.run(main())
    except StartupError as exc:
        raise UsageError(str(exc)) from None


def check(path: Path) -> int:
    config = load(path)
    ok = asyncio.run(run_check(config, sys.stdout))
    if not ok:
        raise UsageError(f"{path}: the sources do not match the config (see above)")
    return 0


def demo(folder: Path, port: int) -> int:
    from agent import demo as demo_module  # noqa: PLC0415 - only the demo needs its data

    config, text = demo_module.prepare(folder, port)
    logs.configure("WARNING")
    serve(Agent(config), announce=text)
    return 0
