"""Which event loop the processes run on (common.loops): uvloop where installed, the
standard loop when BRIDGEHEAD_LOOP=asyncio asks for it or uvloop is missing."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from bridgehead.common import loops
from bridgehead.common.runtime import StopEvent, run_services


def test_the_fast_loop_is_chosen_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("BRIDGEHEAD_LOOP", raising=False)
    assert loops.loop_factory() is uvloop.new_event_loop
    assert loops.loop_name() == "uvloop"


def test_bridgehead_loop_asyncio_asks_for_the_standard_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGEHEAD_LOOP", "asyncio")
    assert loops.loop_factory() is None
    assert loops.loop_name() == "asyncio"


def test_without_uvloop_the_standard_loop_runs() -> None:
    """A plain install (no `fast` extra): the import fails, the standard loop is used."""
    code = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from bridgehead.common.loops import loop_factory, loop_name\n"
        "assert loop_factory() is None, loop_factory()\n"
        "print(loop_name())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30)  # fmt: skip
    assert out.stdout.strip() == "asyncio"


def test_services_run_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_services builds its loop with the factory."""
    pytest.importorskip("uvloop")
    monkeypatch.delenv("BRIDGEHEAD_LOOP", raising=False)
    seen: list[str] = []

    class Probe:
        async def start(self) -> None:
            seen.append(type(asyncio.get_running_loop()).__module__)
            stop.set()

        async def stop(self) -> None:
            return None

    stop = StopEvent()
    run_services([Probe()], stop)
    assert seen[0].startswith("uvloop")
