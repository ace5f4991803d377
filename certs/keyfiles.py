"""Private files: created with 0600 from the first byte, replaced atomically, never world-readable.

The file is written to a temporary name in the same folder, opened with mode 0600 (so no
other user can read it even briefly), then renamed over the target, and the folder synced so
the rename survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from bridgehead.common.files import hand_over, model_of, write_atomically

PRIVATE_FILE = 0o600
PUBLIC_FILE = 0o644
PRIVATE_DIR = 0o700


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600, atomically."""
    write_atomically(path, data, PRIVATE_FILE)


def write_public(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0644 (a certificate), atomically."""
    write_atomically(path, data, PUBLIC_FILE)


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """The random secret stored at `path`, made (0600) on first use."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = secrets.token_bytes(size)
        write_private(path, data)
        return data
    if len(data) < size:
        raise ValueError(f"{path} is shorter than {size} bytes; delete it to make a new one")
    return data


def exposure(path: Path) -> str | None:
    """Why the private file at `path` is readable by others, with the command that fixes it,
    or None when only its owner can read it, when it is not a file it can check, or off POSIX
    (where ACLs apply)."""
    if os.name != "posix":
        return None
    try:
        status = path.stat()
    except OSError:  # missing or unreachable: reading it will say so
        return None
    mode = status.st_mode & 0o777
    if not stat.S_ISREG(status.st_mode):
        return None
    if not mode & 0o077:
        return None
    readers = (("its group", 0o070), ("other users", 0o007))
    who = " and ".join(name for name, bits in readers if mode & bits)
    return f"{path} can be read by {who} (mode {mode:04o}); run: chmod 600 {path}"


def exposed(paths: list[Path]) -> str | None:
    """One sentence naming every private key among `paths` that others can read, or None."""
    problems = [p for p in map(exposure, paths) if p is not None]
    if not problems:
        return None
    return "a private key must be readable only by its owner: " + "; ".join(problems)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a private lock file, made if missing) for the block,
    so read-change-write cycles by two processes do not lose each other's changes."""
    ensure_private_dir(path.parent)
    like = model_of(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        hand_over(fd, like)
        if os.name == "posix":
            import fcntl  # noqa: PLC0415 - POSIX only

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
