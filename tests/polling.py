"""Waiting on state another component owns (a relay's registry, an agent's connections):
poll it, bounded, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_for(check: Callable[[], object], seconds: float = 10) -> None:
    """Poll `check` until true; TimeoutError after `seconds`."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling another component's state, bounded
            await asyncio.sleep(0.01)


async def settle(check: Callable[[], object], seconds: float) -> bool:
    """Whether `check` becomes true within `seconds` (for measured assertions)."""
    try:
        await wait_for(check, seconds)
    except TimeoutError:
        return False
    return True
