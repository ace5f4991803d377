"""The `jobs:` section of agent.yaml: scheduled batch sync, each job an import or an export.

A job is an `import:` (rows into a resource) or an `export:` (rows out). It runs on a
`schedule` (cron, read in `time_zone`) or `every` interval, or only when asked
(`POST /v1/jobs/{name}/runs`, `bridgehead jobs run`) when it has neither. Names of resources
and queries are checked against the rest of the config in `agent.config.references`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bridgehead.agent.schedule import Schedule
from bridgehead.common.config.base import ConfigPath, Duration, Frozen

Format = Literal["ndjson", "csv"]


class ExportFrom(Frozen):
    """`from: customers` or `{resource: customers}` (a resource with a key), or
    `{query: NAME}` (a named query without parameters: every run exports all its rows)."""

    resource: str | None = None
    query: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"resource": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one(self) -> ExportFrom:
        if (self.resource is None) == (self.query is None):
            raise ValueError("export from: names a resource or a {query: NAME}, one of them")
        return self


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

    @model_validator(mode="after")
    def _walkable(self) -> ExportConfig:
        if self.incremental is not None and self.from_.query is not None:
            raise ValueError(
                "incremental: needs a resource to walk; a query's rows are exported whole"
            )
        return self


class ImportFrom(Frozen):
    """`{url: https://..., format: csv}`, or `{resource: NAME}` or `{query: NAME}` of this
    agent (of another source: database-to-database reconciliation on-prem)."""

    url: str | None = None
    format: Format = "csv"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    proxy: str | None = None
    resource: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ImportFrom:
        given = [n for n in ("url", "resource", "query") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("import from: names one of url:, resource: or query:")
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"import from: url {self.url!r} must start with https://")
        return self


class ImportConfig(Frozen):
    from_: ImportFrom = Field(alias="from")
    into: str
    """A resource with a key, whose operations allow the writes `mode` makes."""
    mode: Literal["insert", "upsert", "mirror"] = "upsert"
    scope: str | None = None
    """`mirror` deletes only rows matching this filter (`country=eq.GB`, as in a list URL)."""
    atomic: bool = False
    """True: the whole input in one transaction; false: checkpointed chunks."""
    max_rejects: int = Field(0, ge=0)
    """More rejected rows than this fail the run (atomic: nothing applied)."""
    chunk_rows: int = Field(1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _scoped(self) -> ImportConfig:
        if self.scope is not None and self.mode != "mirror":
            raise ValueError("scope: applies to mode: mirror only")
        return self


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
    import_: ImportConfig | None = Field(None, alias="import")

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
        if (self.export is None) == (self.import_ is None):
            raise ValueError("a job has an import: section or an export: section, one of them")
        self.timetable()  # a ValueError says what to fix
        return self

    def timetable(self) -> Schedule | None:
        """When the job runs, or None when it runs only on demand."""
        if self.schedule is None and self.every is None:
            return None
        every = None if self.every is None else timedelta(seconds=self.every)
        return Schedule.parse(self.schedule, every, self.time_zone)

    @property
    def cadence(self) -> str | None:
        """The schedule in words (`30 2 * * *`, `every 900s`), or None: on demand."""
        return self.schedule or (f"every {self.every:g}s" if self.every else None)
