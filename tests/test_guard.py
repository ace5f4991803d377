# The suite's own guard: a blocking call on the event loop's thread fails the test, so the
# agent's non-blocking rule is checked by every async test, not only by this one.
from __future__ import annotations

import asyncio
import time

import pytest
from blockbuster import BlockingError


async def test_blocking_sleep_on_the_loop_is_caught() -> None:
    """time.sleep inside a coroutine raises BlockingError under the autouse guard."""
    with pytest.raises(BlockingError):
        time.sleep(0.001)  # noqa: ASYNC251 - the blocking call this test expects caught


async def test_blocking_work_in_a_thread_is_allowed() -> None:
    """The same call on a worker thread (how adapters run drivers) is fine."""
    await asyncio.to_thread(time.sleep, 0.001)
