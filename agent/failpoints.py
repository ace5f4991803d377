"""Named places where a test can make the agent die, to prove that recovery works.

Off unless the environment variable `BRIDGEHEAD_FAILPOINT` names a point when the process
starts; then reaching that point kills the process at once with SIGKILL, as a power cut would.
Points: `after-commit` (a write's database commit is done, its response not yet recorded).
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("BRIDGEHEAD_FAILPOINT", "")


def reach(name: str) -> None:
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
