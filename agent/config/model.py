"""The agent's configuration (agent.yaml) as frozen pydantic models. Unknown keys are errors.

Cross-references (a resource's source, key columns inside `columns`) are checked in
`agent.config.references`, so that every problem is reported at once with its YAML line.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bridgehead.adapters import registry
from bridgehead.agent.config.events import EventSettings
from bridgehead.agent.config.jobs import JobConfig
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

Operation = Literal["read", "insert", "update", "delete"]
ParamType = Literal[
    "string", "integer", "decimal", "float", "boolean", "date", "time", "timestamp", "uuid"
]


class SourceConfig(Frozen):
    adapter: str
    target: SecretStr
    """An ODBC connection string or a SQLite path: may hold credentials, so never shown."""
    pool_size: int = Field(4, ge=1, le=64)
    query_timeout: Duration = 30.0
    connect_timeout: Duration = 10.0

    @model_validator(mode="before")
    @classmethod
    def _adapter_key(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = [k for k in data if k in registry.available()]
        if len(names) != 1:
            known = ", ".join(registry.available())
            raise ValueError(f"a source needs exactly one adapter key ({known})")
        # `adapter` and `target` typed in YAML are reported by agent.config.references.
        rest = {k: v for k, v in data.items() if k not in (names[0], "adapter", "target")}
        return {**rest, "adapter": names[0], "target": data[names[0]]}


CsvFormulas = Literal["escape", "allow"]
CAPTURE_MODES = ("triggers", "poll", "change_tracking")


class EventsConfig(Frozen):
    """`events: {capture: triggers}`: the resource's changes become events. `triggers`:
    triggers the agent installs (`bridgehead events install`) write each change into an
    outbox table in the change's own transaction. `poll`: no DDL; the `watermark` column (an
    updated-at or a row version) is walked by keyset with a `lag`, and deletes are found by
    comparing the keys seen with the table's every `every` (`deletes: reconcile`).
    `change_tracking` (SQL Server only): the database's Change Tracking, which `bridgehead
    events install` turns on for the table, read with CHANGETABLE(CHANGES ...)."""

    capture: Literal["triggers", "poll", "change_tracking"]
    watermark: str | None = None
    lag: Duration = 5.0
    deletes: Literal["reconcile", "none"] = "reconcile"
    every: Duration = 600.0
    """How often a polled resource's keys are reconciled to find deleted rows."""

    @field_validator("capture", mode="before")
    @classmethod
    def _known_mode(cls, value: Any) -> Any:
        if value not in CAPTURE_MODES:
            raise ValueError(
                f"capture {value!r} is not supported; use triggers (an outbox and triggers "
                "`bridgehead events install` makes), poll (with a watermark: column) or "
                "change_tracking (SQL Server's Change Tracking)"
            )
        return value

    @model_validator(mode="after")
    def _watermark(self) -> EventsConfig:
        if self.capture == "poll" and self.watermark is None:
            raise ValueError("capture: poll needs watermark: COLUMN (an updated-at or version)")
        if self.capture != "poll" and self.watermark is not None:
            raise ValueError(f"watermark: is for capture: poll; {self.capture} needs none")
        return self


class ResourceConfig(Frozen):
    source: str
    table: str = Field(min_length=1)
    key: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    operations: tuple[Operation, ...] = ("read",)
    max_rows: int = Field(10_000, ge=1, le=10_000_000)
    etag_column: str | None = None
    """A row-version column (rowversion, version counter, updated_at); default: a row hash."""
    csv_formulas: CsvFormulas = "escape"
    """`escape`: CSV fields a spreadsheet would run as formulas get a leading `'` (OWASP);
    `allow`: fields as stored, for programs that read the CSV."""
    events: EventsConfig | None = None
    """How the resource's changes are captured as events; None: they are not."""

    @field_validator("key", "columns", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class QueryConfig(Frozen):
    source: str
    sql: str = Field(min_length=1)
    params: dict[str, ParamType] = Field(default_factory=dict)
    max_rows: int = Field(10_000, ge=1, le=10_000_000)
    csv_formulas: CsvFormulas = "escape"


class ProcedureParam(Frozen):
    """`integer`, or `{type: decimal, direction: out}` for an output parameter."""

    type: ParamType
    direction: Literal["in", "out", "inout"] = "in"

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class ProcedureConfig(Frozen):
    source: str
    name: str = Field(min_length=1)
    params: dict[str, ProcedureParam] = Field(default_factory=dict)


class ApiKeyConfig(Frozen):
    name: str = Field(min_length=1)
    key_sha256: Sha256Hex
    """The key's SHA-256 (`printf %s "$KEY" | sha256sum`)."""
    scopes: tuple[str, ...] = ()


class JwtConfig(Frozen):
    issuer: str
    audience: str
    jwks_file: ConfigPath
    scopes_claim: str = "scope"
    leeway: Duration = 30.0


class AuthConfig(Frozen):
    api_keys: tuple[ApiKeyConfig, ...] = ()
    jwt: JwtConfig | None = None


class ListenConfig(Frozen):
    """`listen: HOST:PORT`, or `listen: {address: HOST:PORT, tls: {cert, key}}` for HTTPS."""

    address: HostPort
    tls: TlsFiles | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"address": value} if isinstance(value, str) else value


class AdminConfig(Frozen):
    """`admin: HOST:PORT`, or `admin: {address: HOST:PORT, token: ${env:ADMIN_TOKEN}}` (or
    `token_sha256: HEX`, the token's SHA-256). With a token every admin request needs
    `Authorization: Bearer TOKEN`; off the loopback interface a token is required."""

    address: HostPort
    token: SecretStr | None = None
    token_sha256: Sha256Hex | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"address": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> AdminConfig:
        if self.token is not None and self.token_sha256 is not None:
            raise ValueError("give the admin token or its token_sha256, not both")
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("the admin token is too short: use at least 16 random characters")
        if self.digest is None and not is_loopback(self.address.host):
            raise ValueError(
                f"admin address {self.address.host} is not loopback, so it needs a token: write "
                "admin: {address: HOST:PORT, token: ${env:BRIDGEHEAD_ADMIN_TOKEN}} or "
                "admin: {address: HOST:PORT, token_sha256: <hex sha256 of a long random token>}"
            )
        return self

    @property
    def digest(self) -> bytes | None:
        """The SHA-256 a request's bearer token must have; None when no token is set."""
        if self.token is not None:
            return hashlib.sha256(self.token.get_secret_value().encode()).digest()
        return bytes.fromhex(self.token_sha256) if self.token_sha256 is not None else None

    def __str__(self) -> str:
        return str(self.address)


class BackoffConfig(Frozen):
    """Reconnect delays: a uniform draw under base * 2^attempt (full jitter), at most cap."""

    base: Duration = Field(0.5, gt=0)
    cap: Duration = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> BackoffConfig:
        if self.cap < self.base:
            raise ValueError(f"cap ({self.cap:g} s) must be at least base ({self.base:g} s)")
        return self


class TunnelConfig(Frozen):
    relay: HostPort
    connections: int = Field(2, ge=1, le=16)
    ca: ConfigPath
    cert: ConfigPath
    key: ConfigPath
    proxy: str | None = None
    heartbeat: Duration = 5.0
    dead_after: Duration = 15.0
    backoff: BackoffConfig = BackoffConfig()
    renew_at: float = Field(0.67, gt=0, lt=1)
    """When the certificate is renewed over the tunnel, as a fraction of its lifetime."""
    max_streams: int = Field(1000, ge=1, le=100_000)
    """Requests the relay may have open at once on each connection (HTTP/2's
    SETTINGS_MAX_CONCURRENT_STREAMS). Those beyond the source's pool_size wait here for a
    database connection, in order, each holding only its stream; past this the relay waits
    its `stream_wait`, then answers 503."""


class LimitsConfig(Frozen):
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_write_rows: int = Field(1000, ge=1, le=100_000)
    max_bulk_rows: int = Field(1_000_000, ge=1)
    """Rows one bulk load (`POST` of an NDJSON or CSV body) may hold; it streams, so this, not
    max_body_bytes, bounds it."""
    requests_per_second: float = Field(100.0, gt=0)
    burst: int = Field(200, ge=1)
    # The local listener's defences against slow and hostile clients:
    header_timeout: Duration = Field(10.0, gt=0)
    """A request's line and headers must arrive within this, from its first byte (or, for a
    connection's first request, from the connection)."""
    body_idle_timeout: Duration = Field(30.0, gt=0)
    """The longest wait for the next piece of a request body: 408 past it."""
    keepalive_timeout: Duration = Field(60.0, gt=0)
    """An idle connection between requests is closed after this."""
    max_connections: int = Field(1000, ge=1)
    """Open connections on the local listener; past it a new one gets a 503 and is closed."""
    failed_auth_burst: int = Field(20, ge=1)
    """Failed authentications one source address may make at once; then 429."""
    failed_auth_per_second: float = Field(0.5, gt=0)
    """How fast a source address earns back a failed authentication."""


class IdempotencyConfig(Frozen):
    ttl: Duration = 24 * 3600.0
    max_keys_per_principal: int = Field(100_000, ge=1)
    """Live Idempotency-Keys one principal may hold; a new key past it is a 429."""


class AgentConfig(Document):
    sources: dict[str, SourceConfig] = Field(min_length=1)
    resources: dict[str, ResourceConfig] = Field(default_factory=dict)
    queries: dict[str, QueryConfig] = Field(default_factory=dict)
    procedures: dict[str, ProcedureConfig] = Field(default_factory=dict)
    auth: AuthConfig = AuthConfig()
    listen: ListenConfig | None = ListenConfig(address=HostPort(host="127.0.0.1", port=8470))
    admin: AdminConfig | None = AdminConfig(address=HostPort(host="127.0.0.1", port=8471))
    tunnel: TunnelConfig | None = None
    limits: LimitsConfig = LimitsConfig()
    idempotency: IdempotencyConfig = IdempotencyConfig()
    jobs: dict[str, JobConfig] = Field(default_factory=dict)
    events: EventSettings = EventSettings()
    shutdown_grace: Duration = 30.0
    """On SIGTERM, how long requests and streams in flight may take to finish (then cut)."""
    logging: LoggingConfig = LoggingConfig()
