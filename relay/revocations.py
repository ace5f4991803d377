"""Revoked agents and certificates, kept in `state_dir/revoked.json` so that a revocation
outlives restarts.

Rules:
- A revocation names an agent id and when it was made: every certificate for that id issued
  until then is refused, and one issued later (the agent enrolled again) is accepted.
- A revocation may instead name one certificate, by agent id and serial: only that
  certificate is refused (one stolen copy), the agent's other certificates are not. The file
  keeps both in one list, a serial entry carrying `"serial": HEX`; a file without serials
  (the older format) reads as before, and an older relay reading a serial entry refuses the
  whole agent (it fails closed).
- The file is replaced whole, atomically and durably (0600), under a lock, so two
  `agents revoke` commands at once both count; a running relay re-reads it when it changes.
- A damaged file is an error that names the file, never an empty list: failing open would
  let revoked agents back in. A file removed on purpose un-revokes everyone, loudly.
- `watch` re-reads the file every second in a running relay and drops the links of agents
  revoked meanwhile; an error keeps the last good list and is logged once, not every second.
- Issue times come from this relay's own CA (the same clock), which dates certificates
  CLOCK_SKEW early; renewal (relay.renewal) checks revocations before it signs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bridgehead.certs.keyfiles import exclusive, write_private
from bridgehead.certs.pki import CLOCK_SKEW, check_name
from bridgehead.relay.registry import Registry

log = logging.getLogger("bridgehead.relay")
FILE_NAME = "revoked.json"
POLL = 1.0


class RevocationsDamaged(ValueError):
    """The revocations file cannot be read; the message names it and the way out."""


class Revocations:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self.revoked: dict[str, datetime] = {}
        self.serials: dict[tuple[str, int], datetime] = {}
        """Single certificates revoked: (agent id, serial) and when."""
        self._seen: tuple[int, int, int] | None = None

    def refuses(self, agent_id: str, not_before: datetime, serial: int | None = None) -> bool:
        """Whether a certificate for `agent_id` valid from `not_before` (with `serial`) is
        revoked.

        The CA dates certificates CLOCK_SKEW early, so they were issued that much later."""
        if serial is not None and (agent_id, serial) in self.serials:
            return True
        at = self.revoked.get(agent_id)
        return at is not None and not_before + CLOCK_SKEW <= at

    def reload(self) -> bool:
        """Read the file again if it changed since the last read; whether it did."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            changed, self.revoked, self._seen = self._seen is not None, {}, None
            self.serials = {}
            if changed:
                log.warning("%s was removed: no agent is revoked any more", self.path)
            return changed
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen == self._seen:
            return False
        self.revoked, self.serials = self._read()
        self._seen = seen
        return True

    def revoke(self, agent_id: str, now: datetime | None = None, serial: int | None = None) -> None:
        """Record the revocation of every certificate for `agent_id` issued until `now`, or,
        with `serial`, of that one certificate only."""
        at = now or datetime.now(UTC)
        with exclusive(self.path.with_name(FILE_NAME + ".lock")):
            self.reload()
            revoked, serials = dict(self.revoked), dict(self.serials)
            if serial is None:
                revoked[agent_id] = at
            else:
                serials.setdefault((agent_id, serial), at)
            entries = [
                {"agent_id": a, "at": when.isoformat()} for a, when in sorted(revoked.items())
            ]
            entries += [
                {"agent_id": a, "serial": f"{s:x}", "at": when.isoformat()}
                for (a, s), when in sorted(serials.items())
            ]
            write_private(self.path, orjson.dumps({"revoked": entries}, option=orjson.OPT_INDENT_2))
            self.reload()

    def _read(self) -> tuple[dict[str, datetime], dict[tuple[str, int], datetime]]:
        revoked: dict[str, datetime] = {}
        serials: dict[tuple[str, int], datetime] = {}
        try:
            for entry in orjson.loads(self.path.read_bytes())["revoked"]:
                agent_id, at = check_name("agent id", entry["agent_id"]), _aware(entry["at"])
                if "serial" in entry:
                    serials[agent_id, parse_serial(entry["serial"])] = at
                else:
                    revoked[agent_id] = at
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RevocationsDamaged(
                f"{self.path} is damaged ({exc}); restore it from a backup, or re-revoke "
                "the agents it listed after moving it away"
            ) from None
        return revoked, serials


def parse_serial(text: str) -> int:
    """A certificate serial as logs print it (hex, `%x`); `0x` and `AB:CD` forms too."""
    cleaned = (
        text.strip().lower().removeprefix("0x").replace(":", "") if isinstance(text, str) else ""
    )
    if not cleaned or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError(f"serial {text!r} is not a hexadecimal certificate serial")
    return int(cleaned, 16)


async def watch(
    revocations: Revocations,
    registry: Registry,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Forever: re-read the revocations; drop the links of agents revoked meanwhile."""
    reported: str | None = None
    while True:
        await sleep(POLL)
        try:
            if await asyncio.to_thread(revocations.reload):
                _drop_revoked(revocations, registry)
            reported = None
        except Exception as exc:  # keep the last good list; the watcher outlives any failure
            if str(exc) != reported:
                log.error("relay: revocations not re-read (the last good list holds): %s", exc)
                reported = str(exc)


def _drop_revoked(revocations: Revocations, registry: Registry) -> None:
    dropped = registry.drop(
        lambda link: revocations.refuses(link.identity.agent_id, link.issued, link.serial)
    )
    for link in dropped:
        log.warning("agent %s is revoked (certificate serial %x); its connection dropped",
                    link.identity.agent_id, link.serial)  # fmt: skip


def _aware(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return at
