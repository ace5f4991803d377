"""Secrets at rest: `enc:` values in a config, sealed with a key only this agent holds.

Rules:
- The key is 32 random bytes in `state_dir/secret.key`, made (0600) the first time a secret is
  encrypted and never made by a reader: a missing key file is an error, not a new key that
  could decrypt nothing.
- A value is `enc:v1.<key id>.<nonce and AES-256-GCM ciphertext, base64url>`. The key id (the
  first 8 bytes of the key's SHA-256, in hex) tells "sealed by another agent" apart from
  "altered"; it is also the associated data, so it cannot be swapped.
- On disk the key goes through a `KeyProtector`: the file's own permissions on POSIX, DPAPI
  (the service account's credentials) on Windows. Everything else is the same everywhere.
- Error messages name the file and what to do, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bridgehead.certs.keyfiles import ensure_private_dir, exposure, write_private

KEY_FILE = "secret.key"
PREFIX = "enc:v1."
_NONCE = 12

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _cipher(key: bytes) -> AESGCM:
    # cryptography is imported on first use: it costs ~9 MiB of resident memory, which an agent
    # with no `enc:` value in its config never pays.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - see above

    return AESGCM(key)


class KeyProtector(Protocol):
    """How the key's bytes are kept on disk."""

    def protect(self, key: bytes) -> bytes: ...

    def unprotect(self, stored: bytes) -> bytes: ...


class FilePermissions:
    """POSIX: the key is stored as is; the 0600 file mode is the protection."""

    def protect(self, key: bytes) -> bytes:
        return key

    def unprotect(self, stored: bytes) -> bytes:
        return stored


class Dpapi:  # pragma: no cover - Windows only
    """Windows: the key is sealed with DPAPI for the account the agent runs as."""

    def protect(self, key: bytes) -> bytes:
        import win32crypt  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - Windows

        return bytes(win32crypt.CryptProtectData(key, "bridgehead", None, None, None, 0))

    def unprotect(self, stored: bytes) -> bytes:
        import win32crypt  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - Windows

        return bytes(win32crypt.CryptUnprotectData(stored, None, None, None, 0)[1])


def default_protector() -> KeyProtector:
    return Dpapi() if os.name == "nt" else FilePermissions()


class SecretBox:
    """Seals and opens `enc:` values with the key in one state folder."""

    def __init__(self, state_dir: Path, protector: KeyProtector | None = None) -> None:
        self.path = state_dir / KEY_FILE
        self.protector = protector or default_protector()
        self._key: bytes | None = None

    def seal(self, plain: str) -> str:
        """The `enc:` value of `plain`; the key file is made if this agent has none yet."""
        key = self._load(create=True)
        nonce = secrets.token_bytes(_NONCE)
        kid = key_id(key)
        sealed = _cipher(key).encrypt(nonce, plain.encode(), kid.encode())
        return PREFIX + kid + "." + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, value: str) -> str:
        """The plain text of an `enc:` value; ValueError saying what is wrong and what to do."""
        kid, _, body = value.removeprefix(PREFIX).partition(".")
        if not value.startswith(PREFIX) or not body:
            raise ValueError(
                "this enc: value is not an enc:v1 value; paste the whole line "
                "`bridgehead secret encrypt` printed"
            )
        key = self._load(create=False)
        if kid != key_id(key):
            raise ValueError(
                f"this enc: value was encrypted by another agent (key {kid}; this agent's is "
                f"{key_id(key)}, in {self.path}); encrypt it again on this agent with "
                "`bridgehead secret encrypt`"
            )
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - see _cipher

        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            nonce, sealed = data[:_NONCE], data[_NONCE:]
            return _cipher(key).decrypt(nonce, sealed, kid.encode()).decode()
        except (binascii.Error, InvalidTag, UnicodeDecodeError, ValueError):
            raise ValueError(
                "this enc: value has been altered or cut short and cannot be decrypted; "
                "encrypt the secret again with `bridgehead secret encrypt`"
            ) from None

    def _load(self, *, create: bool) -> bytes:
        if self._key is None:
            self._key = self._read() if self.path.exists() or not create else self._create()
        return self._key

    def _read(self) -> bytes:
        try:
            stored = self.path.read_bytes()
        except FileNotFoundError:
            raise ValueError(
                f"this enc: value needs the secret key {self.path}, which does not exist; "
                "restore it from backup, or encrypt the secret again with "
                "`bridgehead secret encrypt`"
            ) from None
        except OSError as exc:
            raise ValueError(f"cannot read the secret key {self.path}: {exc.strerror}") from None
        if (problem := exposure(self.path)) is not None:
            raise ValueError(f"cannot use the secret key: {problem}")
        key = self.protector.unprotect(stored)
        if len(key) != 32:
            raise ValueError(f"the secret key {self.path} is damaged (not 32 bytes)")
        return key

    def _create(self) -> bytes:
        key = secrets.token_bytes(32)  # what AESGCM.generate_key(bit_length=256) returns
        ensure_private_dir(self.path.parent)
        write_private(self.path, self.protector.protect(key))
        return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]
