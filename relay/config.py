"""The relay's configuration (SPEC §4): the same YAML rules as the agent's, its own model.

Callers are cloud services with bearer tokens (kept only as SHA-256 digests); each may reach
the agents and groups it lists, nothing else. With `callers_ca` the caller port also demands
a client certificate from that CA, and a caller with `cert_sha256` is bound to one
certificate: its token alone is not enough.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from agent.config.load import parse_document, read_text
from agent.config.model import ConfigPath, Duration, Frozen, HostPort, TlsFiles
from agent.config.yamltree import Path_
from certs.pki import NAME_PATTERN


class CaFiles(Frozen):
    cert: ConfigPath
    key: ConfigPath | None = None
    """Only needed to enroll and renew agents."""


class CallerConfig(Frozen):
    name: str = Field(min_length=1)
    token_sha256: str
    agents: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    cert_sha256: str | None = None
    """The SHA-256 of the caller's client certificate (DER); needs `callers_ca`."""

    @field_validator("token_sha256", "cert_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value.replace(":", "")):
            raise ValueError("must be a SHA-256 as 64 hex digits (colons allowed between pairs)")
        return None if value is None else value.replace(":", "").lower()


class RelayConfig(Frozen):
    agents_listen: HostPort = HostPort(host="0.0.0.0", port=8443)  # noqa: S104 - agents dial in
    listen: HostPort = HostPort(host="0.0.0.0", port=8444)  # noqa: S104 - callers dial in
    tls: TlsFiles
    ca: CaFiles
    state_dir: ConfigPath | None = None
    callers: tuple[CallerConfig, ...] = ()
    callers_ca: ConfigPath | None = None
    """When set, callers must present a client certificate issued by this CA (mutual TLS)."""
    admin: HostPort | None = HostPort(host="127.0.0.1", port=9471)
    request_timeout: Duration = 60.0
    heartbeat: Duration = 5.0
    dead_after: Duration = 15.0
    base_dir: Path = Field(Path(), exclude=True)

    @property
    def state_path(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.base_dir / "relay-state"


def check_relay_references(data: Mapping[str, Any]) -> list[tuple[Path_, str]]:
    return [*_bad_names(data), *_unseen_certificates(data)]


def _unseen_certificates(data: Mapping[str, Any]) -> Iterator[tuple[Path_, str]]:
    if data.get("callers_ca"):
        return
    callers = data.get("callers")
    for i, caller in enumerate(callers if isinstance(callers, list) else []):
        if isinstance(caller, dict) and caller.get("cert_sha256"):
            yield (
                ("callers", i, "cert_sha256"),
                "needs callers_ca: the relay sees a caller's certificate only when it asks "
                "for one; set callers_ca to the CA that issues the callers' certificates",
            )


def _bad_names(data: Mapping[str, Any]) -> Iterator[tuple[Path_, str]]:
    callers = data.get("callers")
    for i, caller in enumerate(callers if isinstance(callers, list) else []):
        if not isinstance(caller, dict):
            continue
        for field in ("agents", "groups"):
            names = caller.get(field)
            for j, name in enumerate(names if isinstance(names, list) else []):
                if isinstance(name, str) and not NAME_PATTERN.fullmatch(name):
                    yield (
                        ("callers", i, field, j),
                        f"{name!r} is not an agent or group name (letters, digits, . _ -)",
                    )


def load_relay_config(file: Path, environ: Mapping[str, str] | None = None) -> RelayConfig:
    file = Path(file)
    return parse_document(
        read_text(file), file, RelayConfig, check_relay_references, environ=environ
    )
