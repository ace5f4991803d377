"""Files written by root for a service: `sudo bridgehead enroll` or `sudo bridgehead-relay
token create` must leave files the service's own user can still use. A replaced file keeps
its owner and group; a new one takes its folder's; in root's own folders nothing changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridgehead.certs.keyfiles import exclusive, write_private

NOBODY = 65534

pytestmark = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0, reason="needs root, which can give files away"
)


def owner(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_uid, status.st_gid, status.st_mode & 0o777


def test_a_new_file_takes_the_folder_owner(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    write_private(folder / "tokens.json", b"{}")
    with exclusive(folder / "tokens.json.lock"):
        pass
    assert owner(folder / "tokens.json") == (NOBODY, NOBODY, 0o600)
    assert owner(folder / "tokens.json.lock") == (NOBODY, NOBODY, 0o600)


def test_a_replaced_file_keeps_its_owner(tmp_path: Path) -> None:
    """/etc/bridgehead is root:bridgehead, its agent.key bridgehead's own: replaced by root,
    the key stays the service user's."""
    folder = tmp_path / "etc"
    folder.mkdir()
    os.chown(folder, 0, NOBODY)
    key = folder / "agent.key"
    write_private(key, b"old")
    assert owner(key) == (0, NOBODY, 0o600)
    os.chown(key, NOBODY, NOBODY)
    write_private(key, b"new")
    assert owner(key) == (NOBODY, NOBODY, 0o600)
    assert key.read_bytes() == b"new"


def test_in_roots_folders_files_stay_roots(tmp_path: Path) -> None:
    os.chown(tmp_path, 0, 0)
    write_private(tmp_path / "secret", b"x")
    assert owner(tmp_path / "secret") == (0, 0, 0o600)
