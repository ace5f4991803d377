"""The `jobs:` section of agent.yaml: scheduled batch sync, each job an import or an export.

A job runs on a `schedule` (cron, read in `time_zone`) or `every` interval, or only when
asked (`POST /v1/jobs/{name}/runs`, `bridgehead jobs run`) when it has neither. Names of
resources and queries are checked against the rest of the config in `agent.config.references`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bridgehead.agent.schedule import Schedule
from bridgehead.common.config.base import ConfigPath, Duration, Frozen

Format = Literal["ndjson", "csv"]


class ExportFrom(Frozen):
    """`from: customers` or `from: {resource: customers}`: a resource with a key."""

    resource: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"resource": value} if isinstance(value, str) else value


class ExportTo(Frozen):
    """Where the chunks go: `{url: https://..., format, chunk_rows}` or `{dir: exports/}`."""

    url: str | None = None
    dir: ConfigPath | None = None
    format: Format = "ndjson"
    chunk_rows: int = Field(10_000, ge=1, le=1_000_000)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Sent with every chunk (`Authorization: "Bearer ${env:INGEST_TOKEN}"`); never logged."""
    proxy: str | None = None
    """An HTTP proxy the chunks are POSTed through (`http://proxy:3128`)."""
    attempts: int = Field(6, ge=1, le=100)
    """How often one chunk is tried (with backoff) before the run fails."""

    @model_validator(mode="after")
    def _one(self) -> ExportTo:
        if (self.url is None) == (self.dir is None):
            raise ValueError("export to: needs a url: or a dir:, not both")
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"export to: url {self.url!r} must start with https://")
        return self


class ExportConfig(Frozen):
    from_: ExportFrom = Field(alias="from")
    incremental: str | None = None
    """A column that grows when a row changes (updated_at, a version): only rows changed
    since the last exported one are sent, walking (column, key); omitted: every row."""
    lag: Duration = 5.0
    """Rows whose column is newer than the run's start minus `lag` wait for the next run, so
    a transaction that commits late is not passed over."""
    to: ExportTo


class JobConfig(Frozen):
    schedule: str | None = None
    """Five-field cron (`30 2 * * *`), read in `time_zone`."""
    every: Duration | None = None
    time_zone: str | None = None
    """An IANA zone (`Europe/London`); default: the machine's."""
    catch_up: bool = False
    """At start, run once if a scheduled run was missed while the agent was down."""
    timeout: Duration = 3600.0
    keep_runs: int = Field(100, ge=1, le=10_000)
    """How many reconciliation reports are kept."""
    export: ExportConfig | None = None

    @field_validator("every")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value < 1:
            raise ValueError("every: must be at least 1s")
        return value

    @model_validator(mode="after")
    def _shape(self) -> JobConfig:
        if self.schedule is not None and self.every is not None:
            raise ValueError("a job has a schedule: (cron) or every:, not both")
        if self.export is None:
            raise ValueError("a job needs an export: section")
        if self.schedule is not None or self.every is not None:
            every = None if self.every is None else timedelta(seconds=self.every)
            Schedule.parse(self.schedule, every, self.time_zone)  # ValueError says what to fix
        return self
