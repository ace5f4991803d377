"""Named places where a test can make a Bridgehead process die, to prove that recovery works.

Off unless the environment variable `BRIDGEHEAD_FAILPOINT` names a point when the process
starts; then reaching that point kills the process at once with SIGKILL, as a power cut would.
Points: `before-commit` (a write's response is recorded as prepared, the database commit not
yet made), `after-commit` (the commit is made, the response not yet marked done),
`pair-written` (a new certificate and key are written beside the old ones) and
`key-replaced` (the new key is in place, the new certificate not yet), `export-chunk-sent`
(an export's sink took a chunk, its checkpoint not yet written) and `export-checkpointed`
(the checkpoint after that chunk is written).
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("BRIDGEHEAD_FAILPOINT", "")


def reach(name: str) -> None:
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
