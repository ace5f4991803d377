# Streaming exports on every backend: NDJSON and CSV carry the whole filtered result in
# order, CSV quotes per RFC 4180, max_rows caps a stream, and on PostgreSQL a caller that
# disconnects mid-stream leaves no query or transaction running.
from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import aiohttp
import pyodbc
import pytest
from backends import Backend
from conftest import BACKENDS, Caller, make_backend, module_backend

ROWS = 10_000
AWKWARD = ["plain", "comma, inside", 'quote " inside', "line\nbreak", "Zoë 東京", ""]


def schema(b: Backend) -> list[str]:
    q = b.quote
    texts = ", ".join(f"({i}, '{v.replace(chr(39), chr(39) * 2)}')" for i, v in enumerate(AWKWARD))
    return [
        "CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, grp INTEGER NOT NULL, "
        "label VARCHAR(50) NOT NULL, score INTEGER NULL)",
        b.generate.format(count=ROWS),
        f"CREATE TABLE texts (id INTEGER NOT NULL PRIMARY KEY, {q('body')} VARCHAR(50) NULL)",
        f"INSERT INTO texts VALUES {texts}, (99, NULL)",
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "exports", schema)


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    resources = {
        "items": {"source": "db", "table": "items", "key": ["id"], "max_rows": ROWS},
        "capped": {"source": "db", "table": "items", "key": ["id"], "max_rows": 1234},
        "capped_far": {"source": "db", "table": "items", "key": ["id"], "max_rows": 7000},
        "exact": {"source": "db", "table": "items", "key": ["id"], "max_rows": ROWS},
        "texts": {"source": "db", "table": "texts", "key": ["id"]},
    }
    caller: Caller = await run_agent({"db": backend.source}, resources)
    return caller


async def export(api: Caller, path: str, accept: str, params: Any = None) -> tuple[int, Any, bytes]:
    status, headers, body = await api.get(path, params, Accept=accept)
    return status, headers, body


async def test_ndjson_streams_every_filtered_row_in_order(api: Caller) -> None:
    """NDJSON carries every matching row once, one JSON object a line, in the asked order."""
    status, headers, body = await export(
        api,
        "/v1/items",
        "application/x-ndjson",
        {"grp": "neq.3", "order": "score.desc", "select": "id,score"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in body.decode().splitlines()]
    expected = [(2 * i, None if i % 5 == 0 else i % 100) for i in range(1, ROWS + 1) if i % 7 != 3]
    assert len(rows) == len(expected)
    assert sorted(r["id"] for r in rows) == sorted(i for i, _ in expected)
    scores = [r["score"] for r in rows]
    nulls = scores.count(None)
    assert scores[:nulls] == [None] * nulls
    assert scores[nulls:] == sorted(scores[nulls:], reverse=True)


async def test_csv_quotes_per_rfc_4180(api: Caller) -> None:
    """CSV has a header and CRLF line ends, quotes commas, quotes and line breaks; NULL is an
    empty field and an empty string a quoted one, so the two stay apart."""
    status, headers, body = await export(api, "/v1/texts", "text/csv")
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    text = body.decode("utf-8")
    assert text.startswith("id,body\r\n")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == ["id", "body"]
    assert parsed[1:] == [[str(i), v] for i, v in enumerate(AWKWARD)] + [["99", ""]]
    assert '"quote "" inside"' in text
    assert text.endswith(f'{len(AWKWARD) - 1},""\r\n99,\r\n')  # empty string, then NULL


@pytest.mark.parametrize(
    ("resource", "params", "rows", "cut"),
    [
        ("capped", {}, 1234, True),  # the cap inside the first chunk
        ("capped_far", {}, 7000, True),  # the cap beyond it: probed
        ("exact", {}, ROWS, False),  # exactly max_rows rows: nothing left out
        ("capped", {"id": "lte.2468"}, 1234, False),  # the filter leaves exactly max_rows
        ("capped", {"id": "lte.2470"}, 1234, True),
        ("capped_far", {"grp": "eq.3"}, sum(i % 7 == 3 for i in range(1, ROWS + 1)), False),
    ],
)
@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/csv"])
async def test_stream_is_capped_by_max_rows_and_says_so(
    api: Caller, resource: str, params: dict[str, str], rows: int, cut: bool, accept: str
) -> None:
    """A stream stops at the resource's max_rows, and X-Truncated says so exactly when rows
    were left out, as on a named query."""
    status, headers, body = await export(api, f"/v1/{resource}", accept, {"select": "id", **params})
    assert status == 200
    assert len(body.splitlines()) == rows + (accept == "text/csv")
    note = headers.get("X-Truncated")
    assert note == (
        f"only the first {1234 if resource == 'capped' else 7000} rows (max_rows)" if cut else None
    )


async def test_stream_errors_are_problems_before_the_first_byte(api: Caller) -> None:
    """A bad filter on a stream is still a 400 problem, not a broken stream."""
    status, headers, problem = await api.get("/v1/items", {"nope": "eq.1"}, Accept="text/csv")
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert problem["detail"].startswith("unknown column 'nope' in filter")


async def test_disconnect_mid_stream_stops_the_query(
    request: pytest.FixtureRequest, tmp_path: Any, run_agent: Any
) -> None:
    """On PostgreSQL, a caller that goes away mid-stream leaves no query or open transaction."""
    backend = await asyncio.to_thread(make_backend, "postgresql", request, tmp_path, "disconnects")
    await asyncio.to_thread(backend.run, schema(backend))
    api = await run_agent(
        {"db": backend.source}, {"items": {"source": "db", "table": "items", "max_rows": ROWS}}
    )
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(
            api.base + "/v1/items",
            headers={"Authorization": f"Bearer {api.key}", "Accept": "application/x-ndjson"},
        ) as response,
    ):
        assert response.status == 200
        await response.content.read(1000)
    # The session is closed: the agent sees the disconnect at its next write.
    for _ in range(50):
        busy = await asyncio.to_thread(backend_activity, backend)
        if not busy:
            break
        await asyncio.sleep(0.1)
    assert busy == []


def backend_activity(backend: Backend) -> list[Any]:
    connection = pyodbc.connect(backend.source["odbc"], autocommit=True)
    try:
        return [
            tuple(row)
            for row in connection.execute(
                "SELECT state, query FROM pg_stat_activity WHERE datname = 'disconnects' "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            ).fetchall()
        ]
    finally:
        connection.close()
