# The adapter contract, through the real HTTP API, on every backend: stdlib SQLite, SQLite
# ODBC, PostgreSQL (psqlODBC) and MariaDB (Connector/ODBC). The same cases run everywhere;
# only the DDL differs per backend.
from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, make_backend, module_backend

ROWS = 10_000
GUID = "123e4567-e89b-12d3-a456-426614174000"
TEXT = "Zoë Ωmega 東京 \"quoted\" 'single' ; -- not a comment"
WEIRD = 'a"b`c'
BINARY = bytes([0, 1, 2, 255, 254, 10, 13])


def schema(b: Backend) -> list[str]:
    t, q = b.types, b.quote
    typed = ["dec", "ts", "date", "time", "bin", "guid", "text", "bool", "big", "float"]
    if t["tstz"]:
        typed.append("tstz")
    columns = ", ".join(f"{q('c_' + name)} {t[name]} NULL" for name in typed)
    odd = q("Odd Table")
    return [
        f"CREATE TABLE types (id INTEGER NOT NULL PRIMARY KEY, {columns})",
        "CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, grp INTEGER NOT NULL, "
        "label VARCHAR(50) NOT NULL, score INTEGER NULL)",
        b.generate.format(count=ROWS),
        f"CREATE TABLE {odd} ({q('Line No')} INTEGER NOT NULL PRIMARY KEY, "
        f"{q('from')} VARCHAR(20) NULL, {q('MixedCase')} INTEGER NULL, {q(WEIRD)} INTEGER)",
        f"INSERT INTO {odd} VALUES (1, 'x', 10, 1), (2, 'y', 20, 2), (3, NULL, 30, 3)",
        f"CREATE TABLE {q('lines')} (order_id INTEGER NOT NULL, line_no INTEGER NOT NULL, "
        "note VARCHAR(20) NOT NULL, PRIMARY KEY (order_id, line_no))",
        f"INSERT INTO {q('lines')} VALUES (1, 1, 'one-one'), (1, 2, 'one-two'), (2, 1, 'two-one')",
        b.slow_view,
    ]


def typed_rows(b: Backend) -> list[str]:
    has_tz = bool(b.types["tstz"])
    binary = {
        "sqlite": "X'000102FFFE0A0D'",
        "sqlite-odbc": "X'000102FFFE0A0D'",
        "postgresql": "'\\x000102fffe0a0d'::bytea",
        "mariadb": "X'000102FFFE0A0D'",
    }[b.name]
    true = {"sqlite": "1", "sqlite-odbc": "1", "postgresql": "TRUE", "mariadb": "1"}[b.name]
    text = TEXT.replace("'", "''")
    values = [
        "1", "12.30", "'2024-02-29 13:45:01.123456'", "'2024-02-29'", "'13:45:01.5'",
        binary, f"'{GUID}'", f"'{text}'", true, "9007199254740993", "0.5",
    ]  # fmt: skip
    if has_tz:
        values.append("'2024-02-29 11:45:01.5'")
    nulls = ", ".join(["2"] + ["NULL"] * (len(values) - 1))
    negative = list(values)
    negative[0], negative[1] = "3", "-99999999.99"
    negative[8] = {"postgresql": "FALSE"}.get(b.name, "0")
    return [
        f"INSERT INTO types VALUES ({', '.join(values)})",
        f"INSERT INTO types VALUES ({nulls})",
        f"INSERT INTO types VALUES ({', '.join(negative)})",
    ]


RESOURCES = {
    "types": {"table": "types", "key": ["id"]},
    "items": {"table": "items", "key": ["id"], "max_rows": 2000},
    "odd": {"table": "Odd Table"},
    "lines": {"table": "lines", "key": ["order_id", "line_no"]},
    "slow": {"table": "slow", "source": "slowdb"},
}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(
        request, tmp_path_factory, "contract", lambda b: schema(b) + typed_rows(b)
    )


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    resources = {
        name: {"source": "db", **spec} for name, spec in RESOURCES.items() if name != "slow"
    }
    resources["slow"] = {"source": "slowdb", "table": "slow"}
    sources = {
        "db": backend.source,
        "slowdb": {**backend.source, "query_timeout": "1s"},
    }
    caller: Caller = await run_agent(sources, resources)
    return caller


async def test_types_round_trip_exactly(api: Caller, backend: Backend) -> None:
    """Every kind is served losslessly: DECIMAL as exact text, ISO 8601, base64, GUID text."""
    status, _, body = await api.get("/v1/types", {"order": "id"})
    assert status == 200, body
    full, empty, negative = body["items"]
    expected = {
        "id": 1,
        "c_dec": "12.30",
        "c_ts": "2024-02-29T13:45:01.123456",
        "c_date": "2024-02-29",
        "c_time": "13:45:01.500000",
        "c_bin": base64.b64encode(BINARY).decode(),
        "c_guid": GUID,
        "c_text": TEXT,
        "c_bool": True,
        "c_big": 9007199254740993,
        "c_float": 0.5,
    }
    if backend.types["tstz"]:
        expected["c_tstz"] = "2024-02-29T11:45:01.500000+00:00"
    assert full == expected
    assert empty == {name: (2 if name == "id" else None) for name in expected}
    assert negative["c_dec"] == "-99999999.99"
    assert negative["c_bool"] is False


async def test_single_row_and_composite_key(api: Caller) -> None:
    """A row is addressed by its key; composite keys as k1,k2; a missing row is a 404 problem."""
    status, headers, body = await api.get("/v1/lines/1,2")
    assert (status, body) == (200, {"order_id": 1, "line_no": 2, "note": "one-two"})
    assert headers["ETag"].startswith('"')
    status, headers, body = await api.get("/v1/lines/9,9")
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert body["detail"] == "no lines row with key '9,9'"
    status, _, body = await api.get("/v1/lines/1")
    assert status == 400
    assert body["detail"].startswith(
        "the key '1' has 1 values, not 2: lines rows are addressed as {order_id},{line_no}"
    )
    status, _, body = await api.get("/v1/items/abc")
    assert status == 400
    assert body["detail"] == "key id: 'abc': expected an integer"


FILTERS: list[tuple[dict[str, str], Any]] = [
    ({"id": "eq.20"}, lambda i, g, s: i == 20),
    ({"id": "neq.20", "grp": "eq.3"}, lambda i, g, s: i != 20 and g == 3),
    ({"id": "gt.19990"}, lambda i, g, s: i > 19990),
    ({"id": "gte.19990"}, lambda i, g, s: i >= 19990),
    ({"id": "lt.11"}, lambda i, g, s: i < 11),
    ({"id": "lte.10"}, lambda i, g, s: i <= 10),
    ({"id": "in.(2,4,6,99999)"}, lambda i, g, s: i in (2, 4, 6)),
    ({"score": "is.null", "id": "lt.200"}, lambda i, g, s: s is None and i < 200),
    ({"score": "not.is.null", "id": "lt.30"}, lambda i, g, s: s is not None and i < 30),
    ({"score": "not.eq.3", "id": "lt.30"}, lambda i, g, s: s is not None and s != 3 and i < 30),
    ({"label": "like.item 99*"}, lambda i, g, s: str(i // 2).startswith("99")),
]


def items_model() -> list[tuple[int, int, int | None]]:
    return [(2 * i, i % 7, None if i % 5 == 0 else i % 100) for i in range(1, ROWS + 1)]


@pytest.mark.parametrize(("params", "predicate"), FILTERS)
async def test_filter_operators(api: Caller, params: dict[str, str], predicate: Any) -> None:
    """Each filter operator selects exactly the rows the same predicate selects in Python."""
    status, _, body = await api.get("/v1/items", {**params, "limit": "2000", "select": "id"})
    assert status == 200, body
    expected = [i for i, g, s in items_model() if predicate(i, g, s)]
    assert [row["id"] for row in body["items"]] == expected


async def test_null_ordering_and_select(api: Caller) -> None:
    """NULL sorts last ascending and first descending on every DBMS; select trims columns."""
    params = {"id": "lte.20", "order": "score.asc", "select": "id,score"}
    status, _, body = await api.get("/v1/items", params)
    assert status == 200
    scores = [row["score"] for row in body["items"]]
    assert scores == [1, 2, 3, 4, 6, 7, 8, 9, None, None]
    assert set(body["items"][0]) == {"id", "score"}
    status, _, body = await api.get("/v1/items", {**params, "order": "score.desc"})
    assert [row["score"] for row in body["items"]] == [None, None, 9, 8, 7, 6, 4, 3, 2, 1]


async def test_awkward_identifiers(api: Caller) -> None:
    """Names with spaces, mixed case, reserved words and quote characters are quoted safely."""
    status, _, body = await api.get("/v1/odd", {"from": "eq.y", "MixedCase": "gte.10"})
    assert status == 200, body
    assert body["items"] == [{"Line No": 2, "from": "y", "MixedCase": 20, 'a"b`c': 2}]
    status, _, body = await api.get("/v1/odd", {"order": "from.desc", WEIRD: "lt.4"})
    assert [row["Line No"] for row in body["items"]] == [3, 2, 1]


async def walk(api: Caller, params: dict[str, str], between: Any = None) -> list[int]:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        status, _, body = await api.get("/v1/items", query)
        assert status == 200, body
        seen += [row["id"] for row in body["items"]]
        cursor = body["next_cursor"]
        pages += 1
        if between is not None:
            await between(pages)
        if cursor is None:
            return seen


@pytest.mark.parametrize("order", ["", "score.desc", "grp.asc,score.asc", "label.desc"])
async def test_paging_under_concurrent_inserts(api: Caller, backend: Backend, order: str) -> None:
    """Walking every page returns each pre-existing row exactly once while rows are inserted."""
    inserted = iter(range(1, 2 * ROWS, 2))

    async def insert_some(page: int) -> None:
        ids = [next(inserted) for _ in range(25)]
        rows = ", ".join(f"({i}, {i % 7}, 'new {i}', {i % 50})" for i in ids)
        await asyncio.to_thread(backend.run, [f"INSERT INTO items VALUES {rows}"])

    params = {"limit": "1000", "select": "id"} | ({"order": order} if order else {})
    seen = await walk(api, params, insert_some)
    original = [i for i in seen if i % 2 == 0]
    assert sorted(original) == [2 * i for i in range(1, ROWS + 1)]
    assert len(set(seen)) == len(seen)
    await asyncio.to_thread(backend.run, ["DELETE FROM items WHERE id % 2 = 1"])


async def test_query_timeout_is_504(api: Caller) -> None:
    """A statement that runs past the source's query_timeout is cancelled and answered 504."""
    status, _, body = await api.get("/v1/slow")
    assert status == 504
    assert body["title"] == "Query timeout"
    assert "query_timeout" in body["detail"]
    status, _, body = await api.get("/v1/lines/1,1")
    assert status == 200, "the pool must still serve after a cancelled statement"


BAD_REQUESTS = [
    ({"nope": "eq.1"}, "unknown column 'nope' in filter; columns of items: id, grp, label, score"),
    ({"order": "nope.asc"}, "unknown column 'nope' in order"),
    ({"select": "id,nope"}, "unknown column 'nope' in select"),
    ({"id": "approx.3"}, "filter id: 'approx' is not an operator"),
    ({"id": "eq.1 OR 1=1"}, "filter id: '1 OR 1=1': expected an integer"),
    ({"id": "in.(1,2); DROP TABLE items"}, "filter id: in takes a list like in.(1,2,3)"),
    ({"order": "id.sideways"}, "order: 'id.sideways': direction must be asc or desc"),
    ({"limit": "-1"}, "limit must be a whole number from 1 to 2000, not '-1'"),
    ({"limit": "1e9"}, "limit must be a whole number from 1 to 2000, not '1e9'"),
    ({"cursor": "garbage"}, "cursor is not valid: it was altered or issued by another agent"),
    ({"score": "is.maybe"}, "filter score: is takes null"),
    ({"grp": "like.1*"}, "filter grp: like does not apply to integer columns"),
]


@pytest.mark.parametrize(("params", "message"), BAD_REQUESTS)
async def test_bad_input_is_a_clear_400(api: Caller, params: dict[str, str], message: str) -> None:
    """Every malformed parameter is a 400 problem whose detail says what is wrong."""
    status, headers, body = await api.get("/v1/items", params)
    assert status == 400, body
    assert headers["Content-Type"] == "application/problem+json"
    assert body["detail"].startswith(message)
    assert body["request_id"] == headers["X-Request-Id"]


INJECTIONS = [
    "1'; DROP TABLE items; --",
    "' OR '1'='1",
    "item 1') OR ('a'='a",
    '"; DELETE FROM items; --',
    "\\'; SELECT pg_sleep(10); --",
]


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_injection_is_inert(api: Caller, attack: str) -> None:
    """SQL in values is only ever bound: a text filter matches nothing, a key is a 400 or 404."""
    for params in ({"label": f"eq.{attack}"}, {"label": f"like.{attack}"},
                   {"label": f"in.({attack})"}):  # fmt: skip
        status, _, body = await api.get("/v1/items", params)
        assert status in (200, 400), body
        if status == 200:
            assert body["items"] == []
    status, _, body = await api.get("/v1/lines/" + attack.replace("/", "%2F"))
    assert status in (400, 404)
    status, _, body = await api.get("/v1/items", {"limit": "1", "select": "id"})
    assert status == 200
    assert body["items"] == [{"id": 2}], "the table is intact"


async def test_huge_limit_is_capped_by_max_rows(api: Caller) -> None:
    """A limit over max_rows is capped to max_rows (2000 here), never more rows than that."""
    status, _, body = await api.get("/v1/items", {"limit": "99999999999999999999", "select": "id"})
    assert status == 200
    assert len(body["items"]) == 2000
    assert body["next_cursor"] is not None


async def test_stale_and_forged_cursors(api: Caller) -> None:
    """A cursor used with another filter, or edited by one character, is refused with 400."""
    _, _, first = await api.get("/v1/items", {"limit": "5", "grp": "eq.1"})
    cursor = first["next_cursor"]
    status, _, body = await api.get("/v1/items", {"limit": "5", "grp": "eq.2", "cursor": cursor})
    assert status == 400
    assert body["detail"].startswith("cursor belongs to a different filter or order")
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    status, _, body = await api.get("/v1/items", {"limit": "5", "grp": "eq.1", "cursor": flipped})
    assert status == 400
    assert body["detail"].startswith("cursor is not valid")


async def test_auth_and_scopes(api: Caller) -> None:
    """No token is 401 with a challenge, an unknown key 401, a key without the scope 403."""
    async with api.session.get(api.base + "/v1/items") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = await api.get("/v1/items", key="wrong-key")
    assert status == 401
    status, _, body = await api.get("/v1/items", key="nobody-key")
    assert status == 403
    assert body["detail"] == "nobody lacks the scope 'items:read'; grant it in auth"


async def test_request_id_is_echoed(api: Caller) -> None:
    """X-Request-Id from the caller is returned; without one the agent makes one."""
    _, headers, _ = await api.get("/v1/lines/1,1", **{"X-Request-Id": "trace-123"})
    assert headers["X-Request-Id"] == "trace-123"
    _, headers, _ = await api.get("/v1/lines/1,1")
    assert len(headers["X-Request-Id"]) == 24


@pytest.mark.parametrize("which", ["postgresql", "mariadb"])
async def test_database_restart_reconnects(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, run_agent: Any
) -> None:
    """After the database server restarts, the next request succeeds on a new connection."""
    b = await asyncio.to_thread(make_backend, which, request, tmp_path, "restarts")
    await asyncio.to_thread(
        b.run, ["CREATE TABLE t (id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)"]
    )
    api = await run_agent({"db": b.source}, {"t": {"source": "db", "table": "t"}})
    assert (await api.get("/v1/t"))[0] == 200
    assert b.server is not None
    await asyncio.to_thread(b.server.restart)
    status, _, body = await api.get("/v1/t")
    assert status == 200, body
    assert body["items"] == [{"id": 1}]


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_injection_in_names_and_controls_is_refused(api: Caller, attack: str) -> None:
    """SQL in a column name, select, order, limit or cursor never runs: each is a 400."""
    for params in (
        {attack: "eq.1"},
        {"select": f"id,{attack}"},
        {"order": f"{attack}.asc"},
        {"order": f"id.asc;{attack}"},
        {"limit": attack},
        {"cursor": attack},
    ):
        status, _, body = await api.get("/v1/items", params)
        assert status == 400, (params, body)
    status, _, body = await api.get("/v1/items", {"limit": "1", "select": "id"})
    assert body["items"] == [{"id": 2}], "the table is intact"
