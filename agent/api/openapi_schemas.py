"""The JSON Schemas in the OpenAPI document: each column's values exactly as `agent.values`
puts them on the wire, each resource's row, page and write body, and the problem body.

Rules: pure, no I/O; every call returns fresh dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridgehead.adapters.types import Column, ColumnType, Kind
from bridgehead.agent.api import openapi_patterns as patterns
from bridgehead.agent.catalog import Resource

Json = dict[str, Any]

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


SHARED_SCHEMAS = frozenset({"Problem"})


# Kind → the JSON Schema of its values, as `agent.values` encodes them. TIMESTAMP and TIME
# carry no offset, so they use the registry's `date-time-local`/`time-local`: `date-time` and
# `time` require an offset (RFC 3339), and validators that check formats would reject them.
_KINDS: dict[Kind, tuple[str, dict[str, str]]] = {
    Kind.INTEGER: ("integer", {"format": "int64"}),
    Kind.DECIMAL: ("string", {"format": "decimal", "pattern": DECIMAL_PATTERN}),
    Kind.FLOAT: ("number", {"format": "double"}),
    Kind.BOOLEAN: ("boolean", {}),
    Kind.STRING: ("string", {}),
    Kind.DATE: ("string", {"format": "date"}),
    Kind.TIME: ("string", {"format": "time-local"}),
    Kind.TIMESTAMP: ("string", {"format": "date-time-local"}),
    Kind.TIMESTAMPTZ: ("string", {"format": "date-time"}),
    Kind.UUID: ("string", {"format": "uuid"}),
    Kind.BINARY: ("string", {"contentEncoding": "base64"}),
    Kind.UNKNOWN: ("string", {}),
}


_NOTES: dict[Kind, str] = {
    Kind.DECIMAL: 'an exact decimal number as a string, like "12.30"',
    Kind.TIME: "a time of day without offset (ISO 8601, like 12:30:00)",
    Kind.TIMESTAMP: "a date and time without offset (ISO 8601, like 2024-05-01T12:30:00)",
    Kind.TIMESTAMPTZ: "a date and time with its offset (ISO 8601)",
    Kind.BINARY: "bytes, base64-encoded",
    Kind.UNKNOWN: "a type Bridgehead does not know, served as text",
}


SUFFIXES = ("", "Page", "Write", "Patch")
"""Each resource's schemas: `<Base>`, `<Base>Page`, `<Base>Write`, `<Base>Patch`."""


def schema_names(resource_names: Iterable[str]) -> dict[str, str]:
    """Each resource's schema base name (`customers` → `Customers`), unique with its suffixes."""
    taken = set(SHARED_SCHEMAS)
    bases: dict[str, str] = {}
    for name in sorted(resource_names):
        base = name[:1].upper() + name[1:]
        while {base + suffix for suffix in SUFFIXES} & taken:
            base += "_"
        taken |= {base + suffix for suffix in SUFFIXES}
        bases[name] = base
    return bases


def kind_schema(kind: Kind, nullable: bool = False) -> Json:
    """The JSON Schema of a value of `kind` as the API encodes it; `[T, "null"]` if nullable."""
    json_type, extra = _KINDS[kind]
    return {"type": [json_type, "null"] if nullable else json_type, **extra}


def column_schema(column: Column, fallback: frozenset[Kind] = frozenset()) -> Json:
    """A column's values; where its type may hold values the kind cannot carry (`fallback`:
    the dialect's), also the database's own text that serves them."""
    schema = type_schema(column.type, column.nullable)
    description = describe_type(column.type)
    if column.type.kind in fallback:
        text = {"type": "string", "description": FALLBACK_NOTE}
        return {"anyOf": [schema, text], "description": description}
    schema["description"] = description
    return schema


FALLBACK_NOTE = (
    "A value this column's type cannot carry (an infinite or BC date, a zero date, a "
    "non-finite number, text stored in a SQLite column of another type), as the database's text."
)


_PATTERNED = frozenset(
    {Kind.DECIMAL, Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.BINARY}
)


def type_schema(column_type: ColumnType, nullable: bool = False) -> Json:
    """`kind_schema` narrowed to this column's type: an integer's range, a decimal's digits,
    the ISO 8601 forms of times, base64 for binary (as `agent.values` takes and serves)."""
    schema = kind_schema(column_type.kind, nullable)
    kind = column_type.kind
    if kind is Kind.INTEGER:
        schema["minimum"], schema["maximum"] = patterns.integer_bounds(column_type)
    text = patterns.value(column_type)
    if kind in _PATTERNED and text is not None:
        schema["pattern"] = patterns.anchored(text)
    return schema


def describe_type(column_type: ColumnType) -> str:
    db_type = column_type.db_type or column_type.kind.value
    precise = column_type.kind is Kind.DECIMAL and "(" not in db_type
    if precise and column_type.precision is not None:
        scale = column_type.scale or 0
        db_type = f"{db_type} (precision {column_type.precision}, scale {scale})"
    note = _NOTES.get(column_type.kind)
    return f"Database type {db_type}" + (f"; {note}." if note else ".")


def resource_schemas(resource: Resource, base: str, operations: frozenset[str]) -> Json:
    """`<Base>` (a whole row), `<Base>Page` (a list page), and for the write `operations` shown
    `<Base>Write` (an insert body) and `<Base>Patch` (an update body: no key columns)."""
    names = [c.name for c in resource.columns]
    fallback = resource.adapter.dialect.fallback_kinds
    partial = _columns_object(resource.columns, fallback)
    partial["minProperties"] = 1
    partial["description"] = f"A {resource.name} row: every column, or those `select` names."
    row = _columns_object(resource.columns, fallback)
    row["required"] = names
    row["description"] = f"A {resource.name} row: every served column, NULL as null."
    page = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": partial},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
        "required": ["items", "next_cursor"],
        "additionalProperties": False,
    }
    schemas = {base: row, f"{base}Page": page}
    if "insert" in operations:
        schemas[f"{base}Write"] = _insert_body(resource)
    if "update" in operations:
        schemas[f"{base}Patch"] = _patch_body(resource)
    return schemas


def _insert_body(resource: Resource) -> Json:
    """Required: the NOT NULL columns the database does not fill in (default, identity, ...)."""
    body = _columns_object(resource.columns, stored=True)
    body["minProperties"] = 1
    body["description"] = f"Column values of a new {resource.name} row; unknown columns are a 400."
    required = [c.name for c in resource.columns if not c.nullable and not c.has_default]
    if required:
        body["required"] = required
    return body


def _patch_body(resource: Resource) -> Json:
    keys = {c.name for c in resource.key}
    body = _columns_object(tuple(c for c in resource.columns if c.name not in keys), stored=True)
    body["minProperties"] = 1
    body["description"] = (
        f"The {resource.name} columns to change; not the key ({', '.join(sorted(keys))})."
    )
    return body


def _columns_object(
    columns: Iterable[Column], fallback: frozenset[Kind] = frozenset(), *, stored: bool = False
) -> Json:
    """The columns' schemas; `stored`: values to write, held to text columns' declared length
    (what is served may be longer where the database does not enforce it, as in SQLite)."""
    properties = {c.name: column_schema(c, fallback) for c in columns}
    if stored:
        for column in columns:
            if column.type.kind is Kind.STRING and column.type.length is not None:
                properties[column.name]["maxLength"] = column.type.length
    return {"type": "object", "properties": properties, "additionalProperties": False}


def problem_schema() -> Json:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "An RFC 9457 problem: never SQL, driver messages or stack traces.",
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": text,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong and how to fix it."},
            "request_id": {"type": "string", "description": "The response's X-Request-Id."},
        },
        "required": ["type", "title", "status", "detail", "request_id"],
        "additionalProperties": True,
    }


def ref(section: str, name: str) -> Json:
    return {"$ref": f"#/components/{section}/{name}"}
