"""What this agent exposes, resolved against the databases at start-up.

A `Resource` joins a resource's config with its table's introspected columns: the exposed
columns and their types, the key, and a per-column encoder. Building the catalog is also
what `bridgehead check` uses to report missing tables, columns and unknown types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from bridgehead.adapters.base import Adapter
from bridgehead.adapters.dialects.typenames import base_type_name
from bridgehead.adapters.errors import SourceError, SourceUnavailable
from bridgehead.adapters.types import Column, Kind, TableInfo, TableRef
from bridgehead.agent.config.model import ResourceConfig
from bridgehead.agent.config.references import TRACKING_ELSEWHERE
from bridgehead.agent.metrics import FALLBACK_VALUES
from bridgehead.agent.values import Encoder, encoder


class CatalogProblem(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Resource:
    name: str
    config: ResourceConfig
    adapter: Adapter
    table: TableInfo
    columns: tuple[Column, ...]
    key: tuple[Column, ...]
    by_name: Mapping[str, Column] = field(repr=False)
    encoders: Mapping[str, Encoder | None] = field(repr=False)
    plans: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    """Statements the API renders once for this resource and keeps here (`reads.keyed_read`)."""

    def column(self, name: str) -> Column | None:
        return self.by_name.get(name)

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self.config.operations)


def resolve_resource(
    name: str, config: ResourceConfig, adapter: Adapter, table: TableInfo | None
) -> tuple[Resource | None, list[CatalogProblem]]:
    """The resource, or the problems that stop it from being served."""
    if table is None:
        message = f"no table or view {config.table!r} in the database"
        return None, [CatalogProblem(f"resources.{name}.table", message)]
    problems = list(_mismatches(f"resources.{name}", config, table))
    problems += _tracking_mismatches(f"resources.{name}", config, adapter, table)
    if problems:
        return None, problems
    available = {c.name: c for c in table.columns}
    columns = tuple(available[c] for c in config.columns or tuple(available))
    by_name = {c.name: c for c in columns}
    key = tuple(available[c] for c in config.key or table.primary_key)
    encoders = {
        c.name: encoder(
            c.type.kind,
            adapter.decoder(c.type),
            FALLBACK_VALUES.labels(name, c.name).inc,
        )
        for c in table.columns
    }
    resource = Resource(name, config, adapter, table, columns, key, by_name, encoders)
    return resource, []


def _mismatches(where: str, config: ResourceConfig, table: TableInfo) -> Iterator[CatalogProblem]:
    """What in the resource's config the table does not have, each at its YAML path."""
    available = [c.name for c in table.columns]
    wanted = config.columns or tuple(available)
    for missing in (c for c in wanted if c not in available):
        yield CatalogProblem(
            f"{where}.columns",
            f"no column {missing!r} in {config.table} (columns: {', '.join(available)})",
        )
    if config.etag_column and config.etag_column not in wanted:
        message = f"{config.etag_column!r} is not a served column"
        yield CatalogProblem(f"{where}.etag_column", message)
    key_names = config.key or table.primary_key
    for missing in (c for c in key_names if c not in available):
        yield CatalogProblem(f"{where}.key", f"no column {missing!r} in {config.table}")
    if config.events is not None and not key_names:
        yield CatalogProblem(
            f"{where}.events",
            f"change events need a key, and {config.table} has no primary key; "
            "add key: [...] naming columns that identify a row to the resource",
        )
    writes = sorted(set(config.operations) - {"read"})
    if writes and not key_names:
        yield CatalogProblem(
            f"{where}.operations",
            f"{', '.join(writes)} need a key, and {config.table} has no primary key; "
            "add key: [...] naming columns that identify a row to the resource",
        )


def _tracking_mismatches(
    where: str, config: ResourceConfig, adapter: Adapter, table: TableInfo
) -> list[CatalogProblem]:
    """`capture: change_tracking` needs SQL Server, and the table's primary key as the key
    (Change Tracking identifies a changed row by its primary key alone)."""
    if config.events is None or config.events.capture != "change_tracking":
        return []
    if adapter.dialect.name != "mssql":
        dbms = adapter.dialect.name
        return [CatalogProblem(f"{where}.events.capture", TRACKING_ELSEWHERE.format(dbms=dbms))]
    if config.key and tuple(config.key) != table.primary_key:
        primary = ", ".join(table.primary_key) or "none"
        message = (f"capture: change_tracking identifies rows by the table's primary key "
                   f"({primary}); leave key: out or set it to those columns")  # fmt: skip
        return [CatalogProblem(f"{where}.key", message)]
    return []


# Types whose values reach callers as the database's own text, though the kind is known.
TEXT_FORMS = frozenset(
    {"money", "enum", "set", "interval", "timetz", "time with time zone", "tsvector"}
    | {"tsquery", "inet", "cidr", "macaddr", "macaddr8", "point", "line", "lseg", "box"}
    | {"path", "polygon", "circle", "bit varying", "varbit"}
)


def served_as_text(resource: Resource) -> list[str]:
    """A warning for each served column whose values are the database's text, not a JSON type:
    unknown types, and those whose text form is all Bridgehead can serve (arrays, enums, ...)."""
    return [
        f"resources.{resource.name}: column {c.name!r} has type {c.type.db_type!r}, "
        + (
            "which Bridgehead serves as text (the database's own text form)"
            if _known_text_form(c)
            else "which Bridgehead does not know; it is served as text"
        )
        for c in resource.columns
        if _text_form(resource.adapter, c)
    ]


def _known_text_form(column: Column) -> bool:
    base = base_type_name(column.type.db_type)
    known = base in TEXT_FORMS or base in ("json", "jsonb", "xml") or base.startswith("_")
    return known or column.type.kind is not Kind.UNKNOWN


def _text_form(adapter: Adapter, column: Column) -> bool:
    if column.type.kind is Kind.UNKNOWN:
        return True
    base = base_type_name(column.type.db_type)
    if base.startswith("_") or base.endswith("[]") or base in TEXT_FORMS:
        return True  # `_int4` is psqlODBC's name for int4[]
    # A name no dialect table knows, typed from its ODBC code (PostgreSQL enums, domains).
    return column.type.kind is Kind.STRING and not adapter.dialect.knows_type_name(base)


async def describe(adapter: Adapter, dotted: str) -> TableInfo | None:
    return await adapter.describe(TableRef.parse(dotted))


class Catalog:
    """The resources, resolved at start-up; those on an unreachable source on first use."""

    def __init__(self, resources: Mapping[str, ResourceConfig], adapters: Mapping[str, Adapter]):
        self._configs = resources
        self._adapters = adapters
        self._resolved: dict[str, Resource] = {}

    def adapter(self, source: str) -> Adapter:
        return self._adapters[source]

    def resolved(self) -> tuple[Resource, ...]:
        return tuple(self._resolved.values())

    async def load(self) -> list[CatalogProblem]:
        """Resolve every resource whose source answers; the problems of those that are wrong."""
        problems: list[CatalogProblem] = []
        for name in self._configs:
            try:
                problems += await self._resolve(name)
            except SourceUnavailable:
                continue
        return problems

    async def get(self, name: str) -> Resource | None:
        if name not in self._configs:
            return None
        if name not in self._resolved:
            problems = await self._resolve(name)
            if problems:
                raise SourceError(
                    self._configs[name].source,
                    "; ".join(str(p) for p in problems),
                    detail="The resource does not match its table; run bridgehead check.",
                )
        return self._resolved[name]

    async def _resolve(self, name: str) -> list[CatalogProblem]:
        config = self._configs[name]
        adapter = self._adapters[config.source]
        table = await describe(adapter, config.table)
        resource, problems = resolve_resource(name, config, adapter, table)
        if resource is not None:
            self._resolved[name] = resource
        return problems
