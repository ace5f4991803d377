"""The JSON Schemas in the OpenAPI document: each column's values exactly as `agent.api.values`
puts them on the wire, each resource's row, page and write body, and the problem body.

Rules: pure, no I/O; every call returns fresh dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.types import Column, ColumnType, Kind
from agent.catalog import Resource

Json = dict[str, Any]

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


SHARED_SCHEMAS = frozenset({"Problem"})


# Kind → the JSON Schema of its values, as `agent.api.values` encodes them. TIMESTAMP and TIME
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


def schema_names(resource_names: Iterable[str]) -> dict[str, str]:
    """Each resource's schema base name (`customers` → `Customers`), unique with its suffixes."""
    taken = set(SHARED_SCHEMAS)
    bases: dict[str, str] = {}
    for name in sorted(resource_names):
        base = name[:1].upper() + name[1:]
        while {base, f"{base}Page", f"{base}Write"} & taken:
            base += "_"
        taken |= {base, f"{base}Page", f"{base}Write"}
        bases[name] = base
    return bases


def kind_schema(kind: Kind, nullable: bool = False) -> Json:
    """The JSON Schema of a value of `kind` as the API encodes it; `[T, "null"]` if nullable."""
    json_type, extra = _KINDS[kind]
    return {"type": [json_type, "null"] if nullable else json_type, **extra}


def column_schema(column: Column) -> Json:
    schema = kind_schema(column.type.kind, column.nullable)
    schema["description"] = describe_type(column.type)
    return schema


def describe_type(column_type: ColumnType) -> str:
    db_type = column_type.db_type or column_type.kind.value
    precise = column_type.kind is Kind.DECIMAL and "(" not in db_type
    if precise and column_type.precision is not None:
        scale = column_type.scale or 0
        db_type = f"{db_type} (precision {column_type.precision}, scale {scale})"
    note = _NOTES.get(column_type.kind)
    return f"Database type {db_type}" + (f"; {note}." if note else ".")


def resource_schemas(resource: Resource, base: str) -> Json:
    """`<Base>` (a whole row), `<Base>Page` (a list page) and `<Base>Write` (a write body)."""
    names = [c.name for c in resource.columns]
    partial = _columns_object(resource)
    partial["minProperties"] = 1
    partial["description"] = f"A {resource.name} row: every column, or those `select` names."
    write = _columns_object(resource)
    write["minProperties"] = 1
    write["description"] = f"Column values of a {resource.name} row; unknown columns are a 400."
    row = _columns_object(resource)
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
    return {base: row, f"{base}Page": page, f"{base}Write": write}


def _columns_object(resource: Resource) -> Json:
    properties = {c.name: column_schema(c) for c in resource.columns}
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
