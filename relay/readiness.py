"""The relay's readiness: what `/readyz` on its admin port reports. Pure checks of the
files the relay needs to keep working (no network): the agents' CA certificate must be
readable (every agent handshake and renewal uses it) and the state folder must be a folder
this process can read and write (revocations, enrollment tokens, the admin token).

`problems` returns one sentence per failed check, each saying what to fix; none: ready.
"""

from __future__ import annotations

import os
from pathlib import Path


def problems(ca_file: Path, state_dir: Path) -> list[str]:
    return [p for p in (_ca_problem(ca_file), _state_problem(state_dir)) if p is not None]


def _ca_problem(ca_file: Path) -> str | None:
    try:
        with ca_file.open("rb") as file:
            head = file.read(64)
    except OSError as exc:
        return f"ca.cert {ca_file} cannot be read: {exc.strerror or exc}"
    if b"-----BEGIN" not in head:
        return f"ca.cert {ca_file} is not a PEM certificate"
    return None


def _state_problem(state_dir: Path) -> str | None:
    if not state_dir.is_dir():
        return f"state_dir {state_dir} is not a folder (it was removed or is unreachable)"
    if not os.access(state_dir, os.R_OK | os.W_OK | os.X_OK):
        return f"state_dir {state_dir} cannot be read and written by this user"
    try:
        with os.scandir(state_dir) as entries:
            next(entries, None)
    except OSError as exc:
        return f"state_dir {state_dir} cannot be listed: {exc.strerror or exc}"
    return None
