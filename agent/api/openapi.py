"""The OpenAPI 3.1 document of exactly what this agent serves (`GET /v1/openapi.json`).

Rules: pure, no I/O: built from the resolved catalog and the config, so it lists only the
resources whose tables were found, only the operations each allows, and every served column
with the JSON form its values take on the wire (`agent.values`). Deterministic: resources,
queries, procedures and params are sorted; columns (and their filters) keep their served order.
Every call returns fresh dicts; shared parts are `$ref`s into `components`. Served per
caller: each sees only the operations its scopes reach.

This module assembles the document and its shared components; the schemas of values and rows
are built in `agent.api.openapi_schemas`, the operations in `agent.api.openapi_operations`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridgehead.agent.api.openapi_operations import (
    answer,
    openapi_operation,
    procedure_operation,
    query_operation,
    resource_paths,
)
from bridgehead.agent.api.openapi_schemas import (
    Json,
    problem_schema,
    ref,
    resource_schemas,
    schema_names,
)
from bridgehead.agent.catalog import Resource
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.errors import ANSWERS, ErrorAnswer
from bridgehead.common.problem import PROBLEM_JSON

PRINTABLE = "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"
"""Printable ASCII without edge spaces (HTTP strips those): X-Request-Id, Idempotency-Key."""


def build_openapi(
    resources: Sequence[Resource],
    config: AgentConfig,
    *,
    version: str,
    server_url: str | None = None,
    scopes: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The document; `server_url` is the base that `/v1/...` hangs from (default: `/`).

    With `scopes` (the caller's), only what they reach: a resource's read operations with
    `<resource>:read`, its writes with `<resource>:write`, each query and procedure with its
    own scope. Without, everything the agent serves."""

    def reaches(scope: str) -> bool:
        return scopes is None or scope in scopes

    shown = {r.name: _operations(r, reaches) for r in resources}
    visible = [r for r in resources if shown[r.name]]
    bases = schema_names(r.name for r in visible)
    schemas: Json = {"Problem": problem_schema()}
    paths: Json = {}
    for resource in sorted(visible, key=lambda r: r.name):
        base, allowed = bases[resource.name], shown[resource.name]
        schemas.update(resource_schemas(resource, base, allowed))
        paths.update(resource_paths(resource, base, config, allowed))
    paths.update(_routine_paths(config, reaches))
    paths["/v1/openapi.json"] = {"get": openapi_operation()}
    document: Json = {"openapi": "3.1.0", "info": _info(version)}
    document["servers"] = [{"url": server_url or "/"}]
    document["security"] = [{"bearer": []}]
    document["paths"] = paths
    document["components"] = _components(config, schemas)
    return document


def _operations(resource: Resource, reaches: Callable[[str], bool]) -> frozenset[str]:
    """The resource's operations the caller's scopes reach."""
    read = {"read"} if reaches(f"{resource.name}:read") else set()
    write = {"insert", "update", "delete"} if reaches(f"{resource.name}:write") else set()
    return served_operations(resource) & (read | write)


def served_operations(resource: Resource) -> frozenset[str]:
    """The operations the agent serves on the resource: its config's, but no update where
    every column is in the key (a patch could change nothing, so PATCH is a 405 there).
    Worked out once per resource (each request asks)."""
    served = resource.plans.get("served")
    if isinstance(served, frozenset):
        return served
    keys = {c.name for c in resource.key}
    served = resource.operations
    if all(c.name in keys for c in resource.columns):
        served -= {"update"}
    resource.plans["served"] = served
    return served


def _routine_paths(config: AgentConfig, reaches: Callable[[str], bool]) -> Json:
    paths: Json = {}
    for name, query in sorted(config.queries.items()):
        if reaches(f"queries:{name}"):
            paths[f"/v1/queries/{name}"] = {"post": query_operation(name, query)}
    for name, procedure in sorted(config.procedures.items()):
        if reaches(f"procedures:{name}"):
            paths[f"/v1/procedures/{name}"] = {"post": procedure_operation(name, procedure)}
    return paths


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
        "responses": {answer.name: _error_response(answer) for answer in ANSWERS.values()},
        "parameters": _shared_parameters(),
        "headers": _shared_headers(),
        "securitySchemes": {"bearer": _bearer_scheme(config)},
    }


def _error_response(error: ErrorAnswer) -> Json:
    response = answer(error.meaning, {PROBLEM_JSON: {"schema": ref("schemas", "Problem")}})
    for name in error.headers:
        shared = name in _shared_headers()
        response["headers"][name] = (
            ref("headers", name) if shared else {"schema": {"type": "string"}}
        )
    return response


def _shared_parameters() -> Json:
    request_id = (
        "Your id for this request (1-128 printable ASCII), echoed in X-Request-Id; "
        "any other value is a 400."
    )
    idempotency = "Makes the write exactly-once: a repeat returns the first answer, writes nothing."
    return {
        "X-Request-Id": {
            "name": "X-Request-Id",
            "in": "header",
            "required": False,
            "description": request_id,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": PRINTABLE},
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
                "pattern": PRINTABLE,
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
        "WWW-Authenticate": header("How to authenticate: `Bearer`.", False),
    }


def _bearer_scheme(config: AgentConfig) -> Json:
    text = "An API key, or a JWT"
    jwt = config.auth.jwt
    if jwt is not None:
        text += f" from {jwt.issuer} for audience {jwt.audience}"
    return {"type": "http", "scheme": "bearer", "description": f"{text}, as a bearer token."}
