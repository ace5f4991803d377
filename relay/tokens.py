"""Pending enrollment tokens, kept in `state_dir/enrollment-tokens.json` (0600).

Rules:
- Only the SHA-256 of a token's secret is stored; the token itself is printed once.
- A token is bound to one agent id (and group), expires, and is redeemed at most once: the
  redemption is written (under the lock, atomically) before the certificate is signed, so a
  relay killed mid-enrollment loses the token, never lets it be used twice.
- Every refusal is one sentence for the agent's operator; it never says whether a secret
  was close. Entries ended more than `KEEP` ago are dropped at the next change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bridgehead.certs.keyfiles import exclusive, write_private

FILE_NAME = "enrollment-tokens.json"
KEEP = timedelta(days=7)


class TokenRefused(ValueError):
    """The token cannot enroll an agent; the message says why, in one sentence."""


@dataclass(frozen=True)
class TokenEntry:
    id: str
    secret_sha256: str
    agent: str
    group: str | None
    created: str
    expires: str
    used: str | None = None
    revoked: str | None = None

    def state(self, now: datetime) -> str:
        if self.used:
            return "used"
        if self.revoked:
            return "revoked"
        return "expired" if datetime.fromisoformat(self.expires) <= now else "pending"


class TokenStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._lock = state_dir / (FILE_NAME + ".lock")

    def create(
        self, agent: str, group: str | None, ttl: timedelta, now: datetime
    ) -> tuple[TokenEntry, str]:
        """A new pending token for `agent`: its entry and its secret (shown once)."""
        secret = secrets.token_urlsafe(32)
        entry = TokenEntry(
            id=secrets.token_hex(8),
            secret_sha256=_digest(secret),
            agent=agent,
            group=group,
            created=now.isoformat(),
            expires=(now + ttl).isoformat(),
        )
        with exclusive(self._lock):
            self._write([*self._read(now), entry])
        return entry, secret

    def entries(self, now: datetime) -> list[TokenEntry]:
        return self._read(now)

    def revoke(self, token_id: str, now: datetime) -> TokenEntry:
        with exclusive(self._lock):
            entries = self._read(now)
            found = _find(entries, token_id)
            if found is None or found.state(now) != "pending":
                state = "no such token" if found is None else f"the token is {found.state(now)}"
                raise TokenRefused(f"cannot revoke {token_id}: {state}")
            ended = replace(found, revoked=now.isoformat())
            self._write([ended if e.id == token_id else e for e in entries])
        return ended

    def redeem(self, token_id: str, secret: str, now: datetime) -> TokenEntry:
        """Mark the token used and return it, or TokenRefused saying why it cannot be."""
        with exclusive(self._lock):
            entries = self._read(now)
            found = _find(entries, token_id)
            if found is None or not hmac.compare_digest(_digest(secret), found.secret_sha256):
                raise TokenRefused(
                    "the relay does not know this enrollment token (it was forged, or made by "
                    "another relay); ask for a new one with `bridgehead-relay token create`"
                )
            state = found.state(now)
            if state != "pending":
                raise TokenRefused(
                    f"this enrollment token is {state}; ask for a new one with "
                    "`bridgehead-relay token create`"
                )
            used = replace(found, used=now.isoformat())
            self._write([used if e.id == token_id else e for e in entries])
        return used

    def _read(self, now: datetime) -> list[TokenEntry]:
        try:
            raw = orjson.loads(self.path.read_bytes())["tokens"]
            entries = [TokenEntry(**item) for item in raw]
        except FileNotFoundError:
            return []
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise TokenRefused(
                f"{self.path} is damaged ({exc}); move it away and create the pending tokens again"
            ) from None
        return [e for e in entries if not _long_over(e, now)]

    def _write(self, entries: list[TokenEntry]) -> None:
        data = {"tokens": [asdict(e) for e in entries]}
        write_private(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2))


def _find(entries: list[TokenEntry], token_id: str) -> TokenEntry | None:
    return next((e for e in entries if e.id == token_id), None)


def _long_over(entry: TokenEntry, now: datetime) -> bool:
    ended = entry.used or entry.revoked or entry.expires
    return datetime.fromisoformat(ended) + KEEP < now


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)
