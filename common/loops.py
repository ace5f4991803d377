"""Which event loop the processes run on: uvloop where it is installed (winloop on Windows),
the standard library's otherwise, and the standard one whenever `BRIDGEHEAD_LOOP=asyncio`
asks for it.

Both speak the same asyncio API; uvloop's is faster at what a gateway does most (sockets,
timers, wake-ups from other threads). It is an optional extra (`pip install
'bridgehead[fast]'`), so a plain install works everywhere.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable

Factory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory() -> Factory | None:
    """The fast loop's constructor, or None for the standard one."""
    if os.environ.get("BRIDGEHEAD_LOOP", "").lower() == "asyncio":
        return None
    name = "winloop" if sys.platform == "win32" else "uvloop"
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    factory: Factory = module.new_event_loop
    return factory


def loop_name() -> str:
    """What `loop_factory` picks, for the logs and the status page."""
    factory = loop_factory()
    return "asyncio" if factory is None else factory.__module__.split(".")[0]
