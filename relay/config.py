"""The relay's configuration (relay.yaml): the same YAML rules as the agent's, its own model.

Callers are cloud services with bearer tokens (kept only as SHA-256 digests); each may reach
the agents and groups it lists, nothing else. With `callers_ca` the caller port also demands
a client certificate from that CA, and a caller with `cert_sha256` is bound to one
certificate: its token alone is not enough.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bridgehead.certs.pki import NAME_PATTERN
from bridgehead.common.config.base import (
    ConfigPath,
    Document,
    Duration,
    Frozen,
    HostPort,
    LoggingConfig,
    Sha256Hex,
    TlsFiles,
    is_loopback,
)
from bridgehead.common.config.document import parse_document, read_text
from bridgehead.common.config.yamltree import Path_
from bridgehead.relay.webhooks.config import WebhookConfig


class CaFiles(Frozen):
    cert: ConfigPath
    key: ConfigPath | None = None
    """Only needed to enroll and renew agents."""


class CallerConfig(Frozen):
    name: str = Field(min_length=1)
    token_sha256: Sha256Hex
    agents: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    cert_sha256: Sha256Hex | None = None
    """The SHA-256 of the caller's client certificate (DER); needs `callers_ca`."""


class CallerTls(TlsFiles):
    """The caller port's certificate; `min_version` is the oldest TLS a caller may speak."""

    min_version: Literal["1.2", "1.3"] = "1.2"

    @field_validator("min_version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, float) else value  # YAML reads 1.2 as a number


class RelayAdmin(HostPort):
    """`admin: HOST:PORT`, or `admin: {address: HOST:PORT, token_sha256: HEX}`; off the
    loopback interface every admin path needs the admin token, so a token is required."""

    token_sha256: Sha256Hex | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, value: Any) -> Any:
        if isinstance(value, dict) and "address" in value:
            rest = {k: v for k, v in value.items() if k != "address"}
            where = HostPort.model_validate(value["address"])
            return {"host": where.host, "port": where.port, **rest}
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> RelayAdmin:
        if self.token_sha256 is None and not is_loopback(self.host):
            raise ValueError(
                f"admin address {self.host} is not loopback, so it needs a token: write "
                "admin: {address: HOST:PORT, token_sha256: <hex sha256 of a long random token>}"
            )
        return self

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


class CallerLimits(Frozen):
    """What one caller, one connection and one source address may take of the caller port."""

    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    """The largest request body forwarded (the agent's own default limit); larger is a 413."""
    streams_per_caller: int = Field(64, ge=1)
    """Requests one caller may have in flight at once; more wait `stream_wait`, then 429."""
    stream_wait: Duration = 5.0
    """How long a request waits for a free stream (the caller's or a tunnel's), then 429/503."""
    body_time: Duration = 30.0
    """The whole request body must arrive within this, else 408."""
    header_timeout: Duration = 10.0
    """A request's head (and the TLS handshake) must arrive within this of its first byte."""
    body_idle_timeout: Duration = 30.0
    keep_alive_timeout: Duration = 60.0
    max_connections: int = Field(1024, ge=1)
    auth_failures: int = Field(20, ge=1)
    """Failed authentications one source address may make per `auth_window`; then 429."""
    auth_window: Duration = 60.0


class EnrollmentSettings(Frozen):
    """How agents get and renew their certificates from this relay."""

    address: HostPort | None = None
    """HOST:PORT that tokens tell agents to enroll at; default: the relay certificate's first
    name with the agents_listen port."""
    lifetime: Duration = 30 * 86400.0
    """How long an agent certificate is valid."""
    token_ttl: Duration = 3600.0
    """How long a token from `token create` stays usable when --ttl is not given."""


class RelayConfig(Document):
    STATE_FOLDER = "relay-state"
    SERVICE = "bridgehead-relay"

    agents_listen: HostPort = HostPort(host="0.0.0.0", port=8443)  # noqa: S104 - agents dial in
    listen: HostPort = HostPort(host="0.0.0.0", port=8444)  # noqa: S104 - callers dial in
    tls: CallerTls
    ca: CaFiles
    callers: tuple[CallerConfig, ...] = ()
    callers_ca: ConfigPath | None = None
    """When set, callers must present a client certificate issued by this CA (mutual TLS)."""
    admin: RelayAdmin | None = RelayAdmin(host="127.0.0.1", port=9471)
    request_timeout: Duration = 60.0
    limits: CallerLimits = CallerLimits()
    heartbeat: Duration = 5.0
    dead_after: Duration = 15.0
    enrollment: EnrollmentSettings = EnrollmentSettings()
    webhooks: tuple[WebhookConfig, ...] = ()
    logging: LoggingConfig = LoggingConfig()

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, hooks: tuple[WebhookConfig, ...]) -> tuple[WebhookConfig, ...]:
        names = [hook.name for hook in hooks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two webhooks are named {name}; give each its own name")
        return hooks


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
