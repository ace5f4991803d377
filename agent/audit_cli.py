"""`bridgehead audit verify FILE`: check an audit log file's hash chain and say where it breaks.

Exit codes as for every command: 0 the chain is intact, 1 it is broken (the first bad line is
named on stderr), 2 the file cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from bridgehead.agent.audit import verify_file


def verify_command(path: Path, out: TextIO, err: TextIO) -> int:
    """Verify `path` on its own: a first line chained to an older, absent file is accepted."""
    try:
        result = verify_file(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"bridgehead: cannot read {path} ({reason}); check the path and permissions", file=err
        )
        return 2
    if not result.ok:
        print(f"bridgehead: {path}: {result.reason}", file=err)
        return 1
    plural = "" if result.records == 1 else "s"
    print(f"{path}: {result.records} record{plural}, chain intact", file=out)
    return 0
