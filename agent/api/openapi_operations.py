"""The operations in the OpenAPI document: for each resource only the operations it allows,
with their parameters, bodies, answers and the scope each needs; then queries, procedures and
the document itself.

Rules: pure, no I/O; every call returns fresh dicts; shared parts are `$ref`s into `components`
(built by `agent.api.openapi` from `agent.errors.ANSWERS` and its shared parameters and
headers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bridgehead.adapters.types import ORDERABLE, Kind
from bridgehead.agent.api import openapi_patterns as patterns
from bridgehead.agent.api.filters import DEFAULT_LIMIT, RESERVED, operators
from bridgehead.agent.api.openapi_schemas import Json, describe_type, kind_schema, ref, type_schema
from bridgehead.agent.catalog import Resource
from bridgehead.agent.config.model import AgentConfig, ParamType, ProcedureConfig, QueryConfig
from bridgehead.agent.errors import ANSWERS
from bridgehead.common.problem import JSON, NDJSON

CSV = "text/csv"


_READ_ERRORS = (400, 401, 403, 404, 429, 503, 504)


_BODY_ERRORS = (*_READ_ERRORS, 413)


_WRITE_ERRORS = (*_BODY_ERRORS, 409, 422)


_ANY = "Needs a valid credential, whatever its scopes."


_FILTER_HELP = (
    "Filter `op.value`, optionally prefixed by `not.`: `eq.5`, `in.(1,2,3)`, `is.null`, "
    "`not.is.null`, `like.Zo*` (`*` and `%` match any run of characters, `\\` makes the next "
    "one literal, `_` is literal). Values are read as the column's type."
)


def resource_paths(
    resource: Resource, base: str, config: AgentConfig, allowed: frozenset[str]
) -> Json:
    """`/v1/{resource}` and `/v1/{resource}/{key}`, with only the `allowed` operations."""
    name = resource.name
    collection: Json = {}
    if "read" in allowed:
        collection["get"] = _list_operation(resource, base)
    if "insert" in allowed:
        collection["post"] = _insert_operation(resource, base, config.limits.max_write_rows)
    item: Json = {}
    if resource.key and "read" in allowed:
        item["get"] = _get_operation(resource, base)
    if resource.key and "update" in allowed:
        item["patch"] = _update_operation(resource, base)
    if resource.key and "delete" in allowed:
        item["delete"] = _delete_operation(resource)
    paths: Json = {}
    if collection:
        paths[f"/v1/{name}"] = collection
    if item:
        paths[f"/v1/{name}/{{key}}"] = {"parameters": [_key_parameter(resource)], **item}
    return paths


def _operation(
    operation_id: str,
    tag: str,
    scope: str | None,
    *,
    summary: str,
    responses: Json,
    errors: Iterable[int],
    parameters: Sequence[Json] = (),
    body: Json | None = None,
) -> Json:
    operation: Json = {
        "operationId": operation_id,
        "summary": summary,
        "description": f"{summary}. " + (f"Needs the scope `{scope}`." if scope else _ANY),
        "tags": [tag],
        "security": [{"bearer": []}],
        "parameters": [*parameters, ref("parameters", "X-Request-Id")],
    }
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = {
        **responses,
        **{str(s): ref("responses", ANSWERS[s].name) for s in sorted(errors)},
    }
    return operation


def _list_operation(resource: Resource, base: str) -> Json:
    page = ref("schemas", f"{base}Page")
    content = {JSON: {"schema": page}, **_export_content()}
    ok = {"200": answer(f"A page of {resource.name} rows, or all of them streamed.", content)}
    parameters = [*_list_parameters(resource), *_filter_parameters(resource)]
    name = resource.name
    return _operation(
        f"list_{name}",
        name,
        f"{name}:read",
        summary=f"List {name} rows",
        responses=ok,
        errors=_READ_ERRORS,
        parameters=parameters,
    )


def _export_content() -> Json:
    line = "With Accept: {0}, every matching row (up to max_rows) streamed, {1}."
    return {
        NDJSON: {
            "schema": {
                "type": "string",
                "description": line.format(NDJSON, "one JSON object a line"),
            },
        },
        CSV: {
            "schema": {"type": "string", "description": line.format(CSV, "with a header line")},
        },
    }


def _list_parameters(resource: Resource) -> list[Json]:
    columns = [c.name for c in resource.columns]
    orderable = [c.name for c in resource.columns if c.type.kind in ORDERABLE]
    cap = resource.config.max_rows
    parameters = [
        _array_query("select", columns, "The columns to return (default: all), like a,b."),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "default": min(DEFAULT_LIMIT, cap)},
            f"Rows per page; a larger limit is capped at max_rows ({cap}).",
        ),
        _query(
            "cursor",
            {"type": "string"},
            "The `next_cursor` of the previous page, as this agent issued it (signed: any other "
            "value is a 400).",
        ),
    ]
    if orderable:
        terms = [f"{n}{d}" for n in orderable for d in ("", ".asc", ".desc")]
        help_text = "Sort order, like a.asc,b.desc; the key breaks ties, NULL sorts last."
        parameters.insert(1, _array_query("order", terms, help_text))
    return parameters


def _filter_parameters(resource: Resource) -> list[Json]:
    return [
        _query(
            c.name,
            {"type": "string", "pattern": patterns.filter_value(c.type, operators(c.type.kind))},
            f"{_FILTER_HELP} {c.name} is {c.type.kind.value} (operators: "
            f"{', '.join(operators(c.type.kind))}): {describe_type(c.type)}",
        )
        for c in resource.columns
        if c.name not in RESERVED
    ]


def _query(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _array_query(name: str, values: Sequence[str], description: str) -> Json:
    schema = {"type": "array", "items": {"type": "string", "enum": list(values)}, "minItems": 1}
    parameter = _query(name, schema, description)
    parameter.update(style="form", explode=False)
    return parameter


def _key_parameter(resource: Resource) -> Json:
    names = [c.name for c in resource.key]
    if len(names) == 1:
        schema = type_schema(resource.key[0].type)
        text = f"The row's key, its {names[0]} value."
    else:
        schema = {"type": "string", "pattern": patterns.key([c.type for c in resource.key])}
        shape = ",".join("{" + n + "}" for n in names)
        text = (
            f"The row's composite key `{shape}`: its values in key order, separated by commas "
            "(the path segment may be percent-encoded whole: it is decoded once). A value "
            "holding a comma or starting with a double quote is written in double quotes, a "
            'quote inside doubled, as in a CSV line: `"a,b",3`.'
        )
    parameter = {"name": "key", "in": "path", "required": True, "description": text}
    return {**parameter, "schema": schema, "x-key-columns": names}


def _get_operation(resource: Resource, base: str) -> Json:
    ok = answer(f"The {resource.name} row.", {JSON: {"schema": ref("schemas", base)}})
    ok["headers"]["ETag"] = ref("headers", "ETag")
    name = resource.name
    return _operation(
        f"get_{name}",
        name,
        f"{name}:read",
        summary=f"Read one {name} row",
        responses={"200": ok},
        errors=_READ_ERRORS,
    )


def _insert_operation(resource: Resource, base: str, max_rows: int) -> Json:
    write, row = ref("schemas", f"{base}Write"), ref("schemas", base)
    many = {"type": "array", "items": write, "minItems": 1, "maxItems": max_rows}
    body = {"required": True, "content": {JSON: {"schema": {"oneOf": [write, many]}}}}
    counted = {
        "type": "object",
        "properties": {n: {"type": "integer", "minimum": 0}
                       for n in ("read", "inserted", "updated", "unchanged")},
        "required": ["read", "inserted", "updated", "unchanged"],
        "additionalProperties": False,
    }  # fmt: skip
    loaded = answer(
        "A bulk load's counts: the body was NDJSON (Content-Type: application/x-ndjson, one "
        "object a line) or CSV (text/csv, a header line first), of any length up to "
        "limits.max_bulk_rows, applied in one transaction; with Prefer: "
        "resolution=merge-duplicates rows are upserted. (Those bodies are read as streams, "
        "so they are described here rather than as request media types.)",
        {JSON: {"schema": counted}},
    )
    wrapped = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": row}},
        "required": ["items"],
        "additionalProperties": False,
    }
    text = "The stored row (for an object), or {items: [...]} (for an array); all or nothing."
    created = answer(text, {JSON: {"schema": {"anyOf": [row, wrapped]}}})
    created["headers"].update(_write_headers())
    created["headers"]["ETag"] = {
        "description": "The stored row's version, for an object body (one row): If-Match for "
        "a PATCH or DELETE of it. Not sent for an array.",
        "required": False,
        "schema": {"type": "string"},
    }
    name = resource.name
    return _operation(
        f"insert_{name}",
        name,
        f"{name}:write",
        summary=f"Insert {name} rows",
        responses={"200": loaded, "201": created},
        errors=_WRITE_ERRORS,
        parameters=[ref("parameters", "Idempotency-Key")],
        body=body,
    )


def _update_operation(resource: Resource, base: str) -> Json:
    body = {"required": True, "content": {JSON: {"schema": ref("schemas", f"{base}Patch")}}}
    ok = answer("The row as stored after the update.", {JSON: {"schema": ref("schemas", base)}})
    ok["headers"].update(_write_headers())
    ok["headers"]["ETag"] = ref("headers", "ETag")
    keys = ", ".join(c.name for c in resource.key)
    name = resource.name
    summary = f"Update columns of one {name} row (not its key: {keys})"
    parameters = [_if_match(required=True), ref("parameters", "Idempotency-Key")]
    return _operation(
        f"update_{name}",
        name,
        f"{name}:write",
        summary=summary,
        responses={"200": ok},
        errors=(*_WRITE_ERRORS, 412, 428),
        parameters=parameters,
        body=body,
    )


def _delete_operation(resource: Resource) -> Json:
    gone = answer("Deleted.", None)
    gone["headers"].update(_write_headers())
    parameters = [_if_match(required=True), ref("parameters", "Idempotency-Key")]
    name = resource.name
    return _operation(
        f"delete_{name}",
        name,
        f"{name}:write",
        summary=f"Delete one {name} row",
        responses={"204": gone},
        errors=(*_READ_ERRORS, 409, 412, 422, 428),
        parameters=parameters,
    )


def _if_match(required: bool) -> Json:
    when = "required" if required else "optional"
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "description": f"The row's ETag from a GET ({when}); `*` matches any version.",
        "schema": {"type": "string"},
    }


def _write_headers() -> Json:
    return {"Idempotent-Replayed": ref("headers", "Idempotent-Replayed")}


def _params_body(params: Mapping[str, ParamType]) -> Json:
    properties = {n: kind_schema(Kind(t)) for n, t in sorted(params.items())}
    schema: Json = {"type": "object", "properties": properties, "additionalProperties": False}
    if params:
        schema["required"] = sorted(params)
    return {"required": bool(params), "content": {JSON: {"schema": schema}}}


def query_operation(name: str, query: QueryConfig) -> Json:
    rows = {"type": "array", "items": {"type": "object"}, "maxItems": query.max_rows}
    result = {"type": "object", "properties": {"items": rows}, "required": ["items"]}
    content = {JSON: {"schema": result}, **_export_content()}
    ok = answer(f"The rows of {name}.", content)
    return _operation(
        f"query_{name}",
        "queries",
        f"queries:{name}",
        summary=f"Run the query {name}",
        responses={"200": ok},
        errors=_BODY_ERRORS,
        body=_params_body(query.params),
    )


def procedure_operation(name: str, procedure: ProcedureConfig) -> Json:
    result_sets = {"type": "array", "items": {"type": "array", "items": {"type": "object"}}}
    result = {
        "type": "object",
        "properties": {"result_sets": result_sets, "output": {"type": "object"}},
        "required": ["result_sets", "output"],
    }
    ok = answer(f"The result sets and output values of {name}.", {JSON: {"schema": result}})
    return _operation(
        f"call_{name}",
        "procedures",
        f"procedures:{name}",
        summary=f"Call the procedure {name}",
        responses={"200": ok},
        errors=(*_BODY_ERRORS, 409),
        body=_params_body({n: p.type for n, p in procedure.params.items() if p.direction != "out"}),
    )


def openapi_operation() -> Json:
    ok = answer("This document.", {JSON: {"schema": {"type": "object"}}})
    return _operation(
        "openapi",
        "meta",
        None,
        summary="This agent's OpenAPI document",
        responses={"200": ok},
        errors=(400, 401, 403, 429),
    )


def answer(description: str, content: Json | None) -> Json:
    """A response object: `description`, X-Request-Id, and `content` if it has a body."""
    response: Json = {
        "description": description,
        "headers": {"X-Request-Id": ref("headers", "X-Request-Id")},
    }
    if content is not None:
        response["content"] = content
    return response
