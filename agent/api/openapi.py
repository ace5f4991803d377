"""The OpenAPI 3.1 document of exactly what this agent serves (SPEC §3, `GET /v1/openapi.json`).

Rules: pure, no I/O: built from the resolved catalog and the config, so it lists only the
resources whose tables were found, only the operations each allows, and every served column
with the JSON form its values take on the wire (`agent.api.values`). Deterministic: resources,
queries, procedures and params are sorted; columns (and their filters) keep their served order.
Every call returns fresh dicts; shared parts are `$ref`s into `components`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.types import ORDERABLE, Column, ColumnType, Kind
from agent.api.filters import DEFAULT_LIMIT, RESERVED
from agent.catalog import Resource
from agent.config.model import AgentConfig, ParamType, ProcedureConfig, QueryConfig

Json = dict[str, Any]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
FILTER_PATTERN = r"^(not\.)?(eq|neq|gt|gte|lt|lte|like|in|is)\."
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
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "A parameter, filter, key or body is not valid."),
    401: ("Unauthorized", "No valid API key or token in `Authorization: Bearer ...`."),
    403: ("Forbidden", "The credential lacks the scope this operation needs."),
    404: ("NotFound", "No such resource, row, query or procedure."),
    409: ("Conflict", "A database constraint refused the write, or the Idempotency-Key is busy."),
    412: ("PreconditionFailed", "The row changed since it was read: If-Match does not match."),
    413: ("PayloadTooLarge", "The request body is larger than the agent accepts."),
    422: ("Unprocessable", "This Idempotency-Key was already used for a different request."),
    428: ("PreconditionRequired", "If-Match is required: send the ETag from a GET of the row."),
    429: ("TooManyRequests", "The caller is over its request rate; see Retry-After."),
    503: ("SourceUnavailable", "The database cannot be reached; see Retry-After."),
    504: ("QueryTimeout", "The database did not answer within the source's query_timeout."),
}
_READ_ERRORS = (400, 401, 403, 404, 429, 503, 504)
_BODY_ERRORS = (*_READ_ERRORS, 413)
_WRITE_ERRORS = (*_BODY_ERRORS, 409, 422)
_ANY = "Needs a valid credential, whatever its scopes."
_FILTER_HELP = (
    "Filter `op.value` with op one of eq, neq, gt, gte, lt, lte, like, in, is, optionally "
    "prefixed by `not.`: `eq.5`, `in.(1,2,3)`, `is.null`, `not.is.null`, `like.Zo*` "
    "(`*` and `%` are wildcards). Values are read as the column's type."
)


def build_openapi(
    resources: Sequence[Resource],
    config: AgentConfig,
    *,
    version: str,
    server_url: str | None = None,
) -> dict[str, Any]:
    """The document; `server_url` is the base that `/v1/...` hangs from (default: `/`)."""
    bases = schema_names(r.name for r in resources)
    schemas: Json = {"Problem": _problem_schema()}
    paths: Json = {}
    for resource in sorted(resources, key=lambda r: r.name):
        schemas.update(resource_schemas(resource, bases[resource.name]))
        paths.update(resource_paths(resource, bases[resource.name], config))
    for name, query in sorted(config.queries.items()):
        paths[f"/v1/queries/{name}"] = {"post": _query_operation(name, query)}
    for name, procedure in sorted(config.procedures.items()):
        paths[f"/v1/procedures/{name}"] = {"post": _procedure_operation(name, procedure)}
    paths["/v1/openapi.json"] = {"get": _openapi_operation()}
    document: Json = {"openapi": "3.1.0", "info": _info(version)}
    if server_url is not None:
        document["servers"] = [{"url": server_url}]
    document["security"] = [{"bearer": []}]
    document["paths"] = paths
    document["components"] = _components(config, schemas)
    return document


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
    schema["description"] = _describe_type(column.type)
    return schema


def _describe_type(column_type: ColumnType) -> str:
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


def resource_paths(resource: Resource, base: str, config: AgentConfig) -> Json:
    """`/v1/{resource}` and `/v1/{resource}/{key}`, with only the allowed operations."""
    allowed, name = resource.operations, resource.name
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
        "parameters": [*parameters, _ref("parameters", "X-Request-Id")],
    }
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = {
        **responses,
        **{str(s): _ref("responses", _ERRORS[s][0]) for s in sorted(errors)},
    }
    return operation


def _list_operation(resource: Resource, base: str) -> Json:
    page = _ref("schemas", f"{base}Page")
    content = {JSON: {"schema": page}, **_export_content()}
    ok = {"200": _response(f"A page of {resource.name} rows, or all of them streamed.", content)}
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
            {"type": "integer", "minimum": 1, "maximum": cap, "default": min(DEFAULT_LIMIT, cap)},
            "Rows per page.",
        ),
        _query("cursor", {"type": "string"}, "The `next_cursor` of the previous page."),
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
            {"type": "string", "pattern": FILTER_PATTERN},
            f"{_FILTER_HELP} {c.name} is {c.type.kind.value}: {_describe_type(c.type)}",
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
        schema = kind_schema(resource.key[0].type.kind)
        text = f"The row's key, its {names[0]} value."
    else:
        schema = {"type": "string"}
        shape = ",".join("{" + n + "}" for n in names)
        text = f"The row's composite key `{shape}`: values in key order, a comma inside one as %2C."
    return {"name": "key", "in": "path", "required": True, "description": text, "schema": schema}


def _get_operation(resource: Resource, base: str) -> Json:
    ok = _response(f"The {resource.name} row.", {JSON: {"schema": _ref("schemas", base)}})
    ok["headers"]["ETag"] = _ref("headers", "ETag")
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
    write, row = _ref("schemas", f"{base}Write"), _ref("schemas", base)
    many = {"type": "array", "items": write, "minItems": 1, "maxItems": max_rows}
    body = {"required": True, "content": {JSON: {"schema": {"oneOf": [write, many]}}}}
    wrapped = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": row}},
        "required": ["items"],
        "additionalProperties": False,
    }
    text = "The stored row (for an object), or {items: [...]} (for an array); all or nothing."
    created = _response(text, {JSON: {"schema": {"anyOf": [row, wrapped]}}})
    created["headers"].update(_write_headers())
    name = resource.name
    return _operation(
        f"insert_{name}",
        name,
        f"{name}:write",
        summary=f"Insert {name} rows",
        responses={"201": created},
        errors=_WRITE_ERRORS,
        parameters=[_ref("parameters", "Idempotency-Key")],
        body=body,
    )


def _update_operation(resource: Resource, base: str) -> Json:
    body = {"required": True, "content": {JSON: {"schema": _ref("schemas", f"{base}Write")}}}
    ok = _response("The row as stored after the update.", {JSON: {"schema": _ref("schemas", base)}})
    ok["headers"].update(_write_headers())
    ok["headers"]["ETag"] = _ref("headers", "ETag")
    keys = ", ".join(c.name for c in resource.key)
    name = resource.name
    summary = f"Update columns of one {name} row (not its key: {keys})"
    parameters = [_if_match(required=True), _ref("parameters", "Idempotency-Key")]
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
    gone = _response("Deleted.", None)
    gone["headers"].update(_write_headers())
    parameters = [_if_match(required=False), _ref("parameters", "Idempotency-Key")]
    name = resource.name
    return _operation(
        f"delete_{name}",
        name,
        f"{name}:write",
        summary=f"Delete one {name} row",
        responses={"204": gone},
        errors=(*_READ_ERRORS, 409, 412, 422),
        parameters=parameters,
    )


def _if_match(required: bool) -> Json:
    when = "required" if required else "optional"
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "description": f"The row's ETag from a GET ({when}); `*` matches any version.",
        "schema": {"type": "string", "minLength": 1},
    }


def _write_headers() -> Json:
    return {"Idempotent-Replayed": _ref("headers", "Idempotent-Replayed")}


def _params_body(params: Mapping[str, ParamType]) -> Json:
    properties = {n: kind_schema(Kind(t)) for n, t in sorted(params.items())}
    schema: Json = {"type": "object", "properties": properties, "additionalProperties": False}
    if params:
        schema["required"] = sorted(params)
    return {"required": bool(params), "content": {JSON: {"schema": schema}}}


def _query_operation(name: str, query: QueryConfig) -> Json:
    rows = {"type": "array", "items": {"type": "object"}, "maxItems": query.max_rows}
    result = {"type": "object", "properties": {"items": rows}, "required": ["items"]}
    content = {JSON: {"schema": result}, **_export_content()}
    ok = _response(f"The rows of {name}.", content)
    return _operation(
        f"query_{name}",
        "queries",
        f"queries:{name}",
        summary=f"Run the query {name}",
        responses={"200": ok},
        errors=_BODY_ERRORS,
        body=_params_body(query.params),
    )


def _procedure_operation(name: str, procedure: ProcedureConfig) -> Json:
    result_sets = {"type": "array", "items": {"type": "array", "items": {"type": "object"}}}
    result = {
        "type": "object",
        "properties": {"result_sets": result_sets, "output": {"type": "object"}},
        "required": ["result_sets", "output"],
    }
    ok = _response(f"The result sets and output values of {name}.", {JSON: {"schema": result}})
    return _operation(
        f"call_{name}",
        "procedures",
        f"procedures:{name}",
        summary=f"Call the procedure {name}",
        responses={"200": ok},
        errors=(*_BODY_ERRORS, 409),
        body=_params_body({n: p.type for n, p in procedure.params.items() if p.direction != "out"}),
    )


def _openapi_operation() -> Json:
    ok = _response("This document.", {JSON: {"schema": {"type": "object"}}})
    return _operation(
        "openapi",
        "meta",
        None,
        summary="This agent's OpenAPI document",
        responses={"200": ok},
        errors=(401, 403, 429),
    )


def _response(description: str, content: Json | None) -> Json:
    response: Json = {
        "description": description,
        "headers": {"X-Request-Id": _ref("headers", "X-Request-Id")},
    }
    if content is not None:
        response["content"] = content
    return response


def _ref(section: str, name: str) -> Json:
    return {"$ref": f"#/components/{section}/{name}"}


def _info(version: str) -> Json:
    return {
        "title": "Bridgehead agent",
        "version": version,
        "description": (
            "Tables of legacy databases as REST resources. Values are lossless: decimals as "
            "strings, dates and times as ISO 8601, binary as base64, GUIDs as strings, NULL as "
            "null. Errors are application/problem+json (RFC 9457). Paging is by keyset cursor."
        ),
    }


def _components(config: AgentConfig, schemas: Json) -> Json:
    return {
        "schemas": dict(sorted(schemas.items())),
        "responses": {name: _error_response(s, text) for s, (name, text) in _ERRORS.items()},
        "parameters": _shared_parameters(),
        "headers": _shared_headers(),
        "securitySchemes": {"bearer": _bearer_scheme(config)},
    }


def _error_response(status: int, description: str) -> Json:
    response = _response(description, {PROBLEM_JSON: {"schema": _ref("schemas", "Problem")}})
    if status in (429, 503):
        response["headers"]["Retry-After"] = _ref("headers", "Retry-After")
    if status == 401:
        response["headers"]["WWW-Authenticate"] = {"schema": {"type": "string"}}
    return response


def _problem_schema() -> Json:
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


def _shared_parameters() -> Json:
    request_id = "Your id for this request (1-128 printable ASCII), echoed in X-Request-Id."
    idempotency = "Makes the write exactly-once: a repeat returns the first answer, writes nothing."
    return {
        "X-Request-Id": {
            "name": "X-Request-Id",
            "in": "header",
            "required": False,
            "description": request_id,
            "schema": {"type": "string", "maxLength": 128},
        },
        "Idempotency-Key": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": idempotency,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$",
            },
        },
    }


def _shared_headers() -> Json:
    def header(description: str, required: bool) -> Json:
        return {"description": description, "required": required, "schema": {"type": "string"}}

    return {
        "X-Request-Id": header("The request's id, as in the audit log.", True),
        "ETag": header("The row's version (strong ETag); send it back in If-Match.", True),
        "Retry-After": header("Seconds to wait before retrying.", False),
        "Idempotent-Replayed": header("`true` when this is the stored first answer.", False),
    }


def _bearer_scheme(config: AgentConfig) -> Json:
    text = "An API key, or a JWT"
    jwt = config.auth.jwt
    if jwt is not None:
        text += f" from {jwt.issuer} for audience {jwt.audience}"
    return {"type": "http", "scheme": "bearer", "description": f"{text}, as a bearer token."}
