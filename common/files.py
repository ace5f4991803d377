"""Files replaced atomically and durably: written to a temporary name in the same folder
with their final mode from the first byte, fsynced, renamed over the old one, and the folder
synced so the rename survives a power cut. A process killed at any point leaves the old
file or the new one, whole (and at worst a stray temporary file).

A file that root writes (an operator's `sudo bridgehead enroll`, `bridgehead-relay token
create`) keeps the owner the file had, or, when new, takes its folder's owner and group: a
command run with sudo must not leave the service's own user a file it can no longer read.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with `mode`: a temporary file, fsynced, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    like = model_of(path)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        hand_over(fd, like)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def hand_over(fd: int, like: Path) -> None:
    """When root writes a file (open as `fd`), give it the owner and group of `like` (from
    `model_of`), unless that is root's own."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    model = like.stat()
    if (model.st_uid, model.st_gid) != (0, 0):
        os.fchown(fd, model.st_uid, model.st_gid)


def model_of(path: Path) -> Path:
    """Whose owner a file written at `path` takes: its own while it exists, else its folder's."""
    return path if path.exists() else path.parent


def fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable; POSIX only (Windows cannot open a folder)."""
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
