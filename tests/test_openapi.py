# The OpenAPI document (`agent.api.openapi`): built from a real catalog on a stdlib SQLite
# database, it is a valid OpenAPI 3.1 document that gives every served column its wire type
# and offers only the operations each resource allows; the rows the agent really serves
# conform to it; and schemathesis, driven by `GET /v1/openapi.json`, finds no 5xx and no
# response that breaks the document.
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis

# Loaded here on the main thread: schemathesis imports it lazily, and a first import inside
# the fuzzing thread (pytest rewrites schemathesis, a pytest plugin) can trip CPython 3.11's
# "AST constructor recursion depth mismatch" bug.
import schemathesis.specs.openapi.schemas
from conftest import Caller
from hypothesis import HealthCheck, Phase
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridgehead.agent.api.openapi import build_openapi
from bridgehead.agent.catalog import Catalog
from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.sources import build_adapters

TABLES = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email VARCHAR(100), "
    "balance DECIMAL(12,2) NOT NULL DEFAULT 0, updated_at TIMESTAMP, guid UUID, photo BLOB, "
    "vip BOOLEAN, born DATE, opens TIME, score REAL, shape WIDGET)",
    "CREATE TABLE order_lines (order_id INTEGER NOT NULL, line_no INTEGER NOT NULL, "
    "qty INTEGER NOT NULL, price NUMERIC(10,3), PRIMARY KEY (order_id, line_no))",
    "INSERT INTO customers VALUES (1, 'Zoë', 'zoe@example.com', 12.3, '2024-05-01 12:30:00', "
    "'123e4567-e89b-12d3-a456-426614174000', X'00FF', 1, '1990-02-28', '08:15:00.250000', "
    "1.5, 'circle')",
    "INSERT INTO customers (id, name) VALUES (2, 'Ann')",
    "INSERT INTO order_lines VALUES (1, 1, 3, 9.99), (1, 2, 1, NULL), (2, 1, 7, 0.5)",
]
ALL = ["read", "insert", "update", "delete"]
RESOURCES: dict[str, Any] = {
    "customers": {"source": "db", "table": "customers", "key": ["id"], "operations": ALL},
    "lines": {"source": "db", "table": "order_lines"},
    "ledger": {
        "source": "db",
        "table": "customers",
        "columns": ["id", "name", "balance"],
        "key": ["id"],
        "operations": ["read", "insert"],
        "max_rows": 50,
    },
}
QUERIES: dict[str, Any] = {
    "born_before": {
        "source": "db",
        "sql": "SELECT id, name FROM customers WHERE born < :before",
        "params": {"before": "date"},
    }
}
PROCEDURES: dict[str, Any] = {
    "recalc": {"source": "db", "name": "recalc_balance", "params": {"customer_id": "integer"}}
}


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        for statement in TABLES:
            db.execute(statement)
    db.close()


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    await asyncio.to_thread(make_db, path)
    return path


async def document_for(config: AgentConfig) -> dict[str, Any]:
    """The document for `config`, built from its catalog resolved against the database."""
    adapters = build_adapters(config)
    try:
        for adapter in adapters.values():
            await adapter.open()
        catalog = Catalog(config.resources, adapters)
        assert await catalog.load() == []
        return build_openapi(catalog.resolved(), config, version="1.2.3")
    finally:
        for adapter in adapters.values():
            await adapter.close()


@pytest.fixture
def config(database: Path) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "sources": {"db": {"sqlite": str(database)}},
            "resources": RESOURCES,
            "queries": QUERIES,
            "procedures": PROCEDURES,
        }
    )


@pytest.fixture
async def document(config: AgentConfig) -> dict[str, Any]:
    return await document_for(config)


def schema_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """The document passes openapi-spec-validator as OpenAPI 3.1.0, with the bearer scheme."""
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {**document["info"], "title": "Bridgehead agent", "version": "1.2.3"}
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "API key" in scheme["description"]
    assert "JWT" in scheme["description"]
    assert document["security"] == [{"bearer": []}]
    assert document["servers"] == [{"url": "/"}]


async def test_document_is_deterministic(config: AgentConfig, document: dict[str, Any]) -> None:
    """Two builds serialise to the same bytes, whatever order the catalog lists resources in."""
    adapters = build_adapters(config)
    for adapter in adapters.values():
        await adapter.open()
    try:
        catalog = Catalog(config.resources, adapters)
        await catalog.load()
        backwards = build_openapi(catalog.resolved()[::-1], config, version="1.2.3")
    finally:
        for adapter in adapters.values():
            await adapter.close()
    assert json.dumps(backwards) == json.dumps(document)
    assert list(document["paths"]) == [
        "/v1/customers",
        "/v1/customers/{key}",
        "/v1/ledger",
        "/v1/ledger/{key}",
        "/v1/lines",
        "/v1/lines/{key}",
        "/v1/queries/born_before",
        "/v1/procedures/recalc",
        "/v1/openapi.json",
    ]


def test_server_url_is_the_base_of_the_paths(config: AgentConfig) -> None:
    """With server_url (as behind the relay), servers names it; paths still start at /v1."""
    document = build_openapi([], config, version="0", server_url="https://relay/agents/plant-7")
    validate(document)
    assert document["servers"] == [{"url": "https://relay/agents/plant-7"}]
    assert "/v1/openapi.json" in document["paths"]


def typed(schema: dict[str, Any]) -> dict[str, Any]:
    """A column's typed schema: SQLite columns also admit the database's text (`anyOf`)."""
    if "anyOf" not in schema:
        return schema
    value, text = schema["anyOf"]
    assert text["type"] == "string"
    assert "as the database's text" in text["description"]
    return {**value, "description": schema["description"]}


def test_columns_have_their_wire_types(document: dict[str, Any]) -> None:
    """Each kind maps to the JSON type and format the encoder produces; NULL-able ones add null;
    on SQLite, which keeps whatever was stored, every typed column admits text as well."""
    raw = schema_of(document, "Customers")["properties"]
    assert "anyOf" in raw["balance"]
    assert "anyOf" not in raw["name"]  # text is text
    props = {name: typed(schema) for name, schema in raw.items()}
    assert props["id"] == {**props["id"], "type": "integer", "format": "int64"}
    assert props["name"]["type"] == "string"
    assert props["email"]["type"] == ["string", "null"]
    balance = props["balance"]
    assert (balance["type"], balance["format"]) == ("string", "decimal")
    assert balance["pattern"] == r"^(-?[0-9]{1,10}(\.[0-9]{1,2})?)$"  # DECIMAL(12,2)
    assert "DECIMAL(12,2)" in balance["description"]
    assert props["updated_at"]["type"] == ["string", "null"]
    assert props["updated_at"]["format"] == "date-time-local"
    assert "without offset" in props["updated_at"]["description"]
    assert props["guid"]["format"] == "uuid"
    assert props["photo"]["contentEncoding"] == "base64"
    assert props["vip"]["type"] == ["boolean", "null"]
    assert props["born"]["format"] == "date"
    assert props["opens"]["format"] == "time-local"
    assert props["score"]["type"] == ["number", "null"]
    assert props["shape"]["type"] == ["string", "null"]
    assert "WIDGET" in props["shape"]["description"]


def test_row_page_and_write_schemas(document: dict[str, Any]) -> None:
    """A row requires every served column; a page holds rows and a cursor; an insert requires
    the NOT NULL columns the database does not fill in; a patch names any column but the key."""
    row = schema_of(document, "Ledger")
    assert list(row["properties"]) == ["id", "name", "balance"]
    assert row["required"] == ["id", "name", "balance"]
    assert row["additionalProperties"] is False
    page = schema_of(document, "LedgerPage")
    assert page["required"] == ["items", "next_cursor"]
    assert page["properties"]["next_cursor"]["type"] == ["string", "null"]
    assert "required" not in page["properties"]["items"]["items"]
    write = schema_of(document, "LedgerWrite")
    assert write["required"] == ["name"]  # id is the rowid, balance has a default
    assert write["additionalProperties"] is False
    assert write["properties"] == {n: typed(s) for n, s in row["properties"].items()}
    assert "LedgerPatch" not in document["components"]["schemas"]  # ledger has no update
    patch = schema_of(document, "CustomersPatch")
    assert "id" not in patch["properties"]
    assert set(patch["properties"]) == set(schema_of(document, "Customers")["properties"]) - {"id"}
    assert patch["additionalProperties"] is False
    assert "required" not in patch
    problem = schema_of(document, "Problem")
    assert set(problem["required"]) == {"type", "title", "status", "detail", "request_id"}


def test_write_operations_only_where_allowed(document: dict[str, Any]) -> None:
    """POST, PATCH and DELETE appear exactly where the resource's operations allow them."""
    methods = {path: set(item) - {"parameters"} for path, item in document["paths"].items()}
    assert methods["/v1/customers"] == {"get", "post"}
    assert methods["/v1/customers/{key}"] == {"get", "patch", "delete"}
    assert methods["/v1/ledger"] == {"get", "post"}
    assert "/v1/ledger/{key}" in document["paths"]
    assert set(document["paths"]["/v1/ledger/{key}"]) == {"parameters", "get"}
    assert methods["/v1/lines"] == {"get"}
    assert methods["/v1/lines/{key}"] == {"get"}
    patch = document["paths"]["/v1/customers/{key}"]["patch"]
    assert {"412", "428"} <= set(patch["responses"])
    assert any(p.get("name") == "If-Match" and p["required"] for p in patch["parameters"])
    post = document["paths"]["/v1/customers"]["post"]
    assert {"201", "409", "413", "422"} <= set(post["responses"])
    assert post["responses"]["201"]["headers"]["ETag"]["required"] is False  # only for one row
    assert "204" in document["paths"]["/v1/customers/{key}"]["delete"]["responses"]


def test_operation_ids_are_unique_and_every_operation_is_secured(
    document: dict[str, Any],
) -> None:
    """Every operation has its own operationId, the bearer scheme and X-Request-Id."""
    ops = operations(document)
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert {"list_customers", "get_customers", "insert_customers", "update_customers"} <= set(ids)
    assert {"query_born_before", "call_recalc", "openapi"} <= set(ids)
    for (path, method), op in ops.items():
        assert op["security"] == [{"bearer": []}], (path, method)
        refs = [p.get("$ref", "") for p in op["parameters"]]
        assert "#/components/parameters/X-Request-Id" in refs, (path, method)
        writes = method in ("post", "patch", "delete") and "/queries/" not in path
        writes = writes and "/procedures/" not in path
        assert ("#/components/parameters/Idempotency-Key" in refs) is writes, (path, method)
    assert "customers:write" in ops[("/v1/customers", "post")]["description"]
    assert "lines:read" in ops[("/v1/lines", "get")]["description"]


def test_list_parameters_document_the_query_grammar(document: dict[str, Any]) -> None:
    """select, order, limit (1..max_rows), cursor, and a filter per served column."""
    listed = document["paths"]["/v1/ledger"]["get"]["parameters"]
    params = {p["name"]: p for p in listed if "name" in p}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "default": 50}
    assert "capped at max_rows (50)" in params["limit"]["description"]
    assert params["select"]["schema"]["items"]["enum"] == ["id", "name", "balance"]
    assert (params["select"]["style"], params["select"]["explode"]) == ("form", False)
    assert "balance.desc" in params["order"]["schema"]["items"]["enum"]
    assert params["cursor"]["schema"] == {"type": "string"}
    for column in ("id", "name", "balance"):
        assert params[column]["schema"]["type"] == "string"
        for op in ("eq", "neq", "gt", "gte", "lt", "lte", "like", "in", "is", "not."):
            assert op in params[column]["description"]
    content = document["paths"]["/v1/ledger"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson", "text/csv"}
    errors = document["paths"]["/v1/ledger"]["get"]["responses"]
    assert {"400", "401", "403", "404", "429", "503", "504"} <= set(errors)


def test_composite_keys_are_explained(document: dict[str, Any]) -> None:
    """The item path's key parameter names the key columns in key order."""
    key = document["paths"]["/v1/lines/{key}"]["parameters"][0]
    assert (key["name"], key["in"], key["required"]) == ("key", "path", True)
    assert "{order_id},{line_no}" in key["description"]
    assert "decoded once" in key["description"]
    assert '"a,b",3' in key["description"]
    single = document["paths"]["/v1/customers/{key}"]["parameters"][0]
    int64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
    assert single["schema"] == {"type": "integer", "format": "int64", **int64}
    get = document["paths"]["/v1/lines/{key}"]["get"]["responses"]["200"]
    assert get["headers"]["ETag"] == {"$ref": "#/components/headers/ETag"}


def test_queries_and_procedures_have_their_own_paths(document: dict[str, Any]) -> None:
    """A query's body declares its params (all required, nothing else); a procedure's too."""
    query = document["paths"]["/v1/queries/born_before"]["post"]
    body = query["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"] == {"before": {"type": "string", "format": "date"}}
    assert (body["required"], body["additionalProperties"]) == (["before"], False)
    result = query["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["required"] == ["items"]
    assert "queries:born_before" in query["description"]
    call = document["paths"]["/v1/procedures/recalc"]["post"]
    body = call["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["customer_id"]["type"] == "integer"
    result = call["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["required"] == ["result_sets", "output"]


def validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def test_served_rows_conform_to_their_schemas(database: Path, run_agent: Any) -> None:
    """Pages, single rows and inserted rows, as really served, validate against the schemas."""
    api: Caller = await run_agent({"db": {"sqlite": str(database)}}, RESOURCES)
    assert api.agent is not None
    document = await document_for(api.agent.config)
    status, _, page = await api.get("/v1/customers")
    assert status == 200, page
    validator(document, "CustomersPage").validate(page)
    status, _, narrow = await api.get("/v1/customers", {"select": "balance,opens"})
    validator(document, "CustomersPage").validate(narrow)
    status, _, row = await api.get("/v1/customers/1")
    assert row["balance"] == "12.30"
    validator(document, "Customers").validate(row)
    status, _, lines = await api.get("/v1/lines/1,2")
    assert status == 200, lines
    validator(document, "Lines").validate(lines)
    sent = {"name": "Bo", "updated_at": "2024-02-29T23:59:59.5", "guid": None, "photo": "AAE="}
    validator(document, "CustomersWrite").validate(sent)
    status, _, stored = await api.send("POST", "/v1/customers", sent)
    assert status == 201, stored
    validator(document, "Customers").validate(stored)
    status, _, problem = await api.get("/v1/customers/nope")
    assert status == 400
    validator(document, "Problem").validate(problem)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
MAX_EXAMPLES = 20
BUDGET_SECONDS = 45.0


def fuzz(document: dict[str, Any], base_url: str, key: str) -> list[str]:
    """Run schemathesis over every operation (blocking); the failures, one message each."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    auth = {"Authorization": f"Bearer {key}"}
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        if time.monotonic() > deadline:
            failures.append(f"{operation.label}: not reached within {BUDGET_SECONDS} s")
            continue

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=base_url, headers=auth, timeout=10)
            case.validate_response(response, checks=CHECKS, headers=auth)

        try:
            check()
        except (Exception, FailureGroup) as exc:  # report every operation's failures
            failures.append(f"{operation.label}: {exc}")
    return failures


async def test_schemathesis_finds_the_agent_true_to_its_document(
    database: Path, run_agent: Any
) -> None:
    """GET /v1/openapi.json, then 20 generated requests per operation: no 5xx, all conform."""
    api: Caller = await run_agent(
        {"db": {"sqlite": str(database)}},
        RESOURCES,
        queries=QUERIES,
        # rates out of the way: schemathesis sends many requests, with bad credentials too
        limits={"requests_per_second": 10_000, "burst": 10_000, "failed_auth_burst": 100_000},
    )
    status, headers, document = await api.get("/v1/openapi.json")
    assert status == 200, document
    assert headers["Content-Type"].startswith("application/json")
    await asyncio.to_thread(validate, document)
    failures = await asyncio.to_thread(fuzz, document, api.base, api.key)
    assert not failures, "\n\n".join(failures)


async def test_document_shows_only_what_the_scopes_reach(config: AgentConfig) -> None:
    """With a caller's scopes, the document lists a resource's reads only with :read, its
    writes only with :write, and each query or procedure only with its own scope."""
    adapters = build_adapters(config)
    for adapter in adapters.values():
        await adapter.open()
    try:
        catalog = Catalog(config.resources, adapters)
        await catalog.load()
        scopes = frozenset({"customers:read", "ledger:write", "queries:born_before"})
        document = build_openapi(catalog.resolved(), config, version="1", scopes=scopes)
    finally:
        for adapter in adapters.values():
            await adapter.close()
    await asyncio.to_thread(validate, document)
    methods = {path: set(item) - {"parameters"} for path, item in document["paths"].items()}
    assert methods == {
        "/v1/customers": {"get"},
        "/v1/customers/{key}": {"get"},
        "/v1/ledger": {"post"},
        "/v1/queries/born_before": {"post"},
        "/v1/openapi.json": {"get"},
    }
    schemas = set(document["components"]["schemas"])
    assert {"CustomersWrite", "CustomersPatch", "Lines", "LinesPage"}.isdisjoint(schemas)
    assert {"Customers", "CustomersPage", "LedgerWrite"} <= schemas


async def test_served_document_depends_on_the_caller(database: Path, run_agent: Any) -> None:
    """GET /v1/openapi.json answers each key with its own view: a key with no scopes sees only
    the document's own path; a key with every scope sees every operation."""
    api: Caller = await run_agent(
        {"db": {"sqlite": str(database)}}, RESOURCES, queries=QUERIES, procedures=PROCEDURES
    )
    status, _, bare = await api.get("/v1/openapi.json", key="nobody-key")
    assert status == 200, bare
    assert list(bare["paths"]) == ["/v1/openapi.json"]
    assert bare["servers"] == [{"url": "/"}]
    status, _, full = await api.get("/v1/openapi.json")
    assert "/v1/procedures/recalc" in full["paths"]
    assert "patch" in full["paths"]["/v1/customers/{key}"]


@pytest.mark.parametrize("given", ["x" * 129, "tab\tinside", ""])
async def test_a_request_id_breaking_the_rule_is_a_400(
    database: Path, run_agent: Any, given: str
) -> None:
    """An X-Request-Id that is not 1-128 printable ASCII is a 400 problem carrying a fresh
    id (in the header and the body), not silently replaced; 128 characters are accepted."""
    api: Caller = await run_agent({"db": {"sqlite": str(database)}}, RESOURCES)
    status, headers, problem = await api.get("/v1/customers/1", **{"X-Request-Id": given})
    assert status == 400, problem
    assert "X-Request-Id must be 1 to 128 printable ASCII characters" in problem["detail"]
    assert len(headers["X-Request-Id"]) == 24
    assert problem["request_id"] == headers["X-Request-Id"]
    status, headers, _ = await api.get("/v1/customers/1", **{"X-Request-Id": "y" * 128})
    assert status == 200
    assert headers["X-Request-Id"] == "y" * 128
