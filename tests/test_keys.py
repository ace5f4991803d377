# Row keys in `/v1/{resource}/{key}` on every backend: the path segment is decoded once, so
# a generated client that percent-encodes the whole composite key (`1%2C2`) reaches the row,
# and a value holding a comma is written in double quotes, as in a CSV line.
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, module_backend


def schema(b: Backend) -> list[str]:
    q = b.quote
    return [
        f"CREATE TABLE tags ({q('kind')} VARCHAR(20) NOT NULL, {q('name')} VARCHAR(20) NOT NULL, "
        f"n INTEGER NOT NULL, PRIMARY KEY ({q('kind')}, {q('name')}))",
        "INSERT INTO tags VALUES ('a', 'b', 1), ('a,b', 'c\"d', 2), ('x', '', 3), "
        "('1/2', '%41', 4)",
        "CREATE TABLE words (w VARCHAR(20) NOT NULL PRIMARY KEY, n INTEGER NOT NULL)",
        "INSERT INTO words VALUES ('one,two', 1), ('\"q', 2)",
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "keys", schema)


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    resources = {
        "tags": {
            "source": "db",
            "table": "tags",
            "key": ["kind", "name"],
            "operations": ["read", "update"],
        },
        "words": {"source": "db", "table": "words"},
    }
    caller: Caller = await run_agent({"db": backend.source}, resources)
    return caller


@pytest.mark.parametrize(
    ("segment", "n"),
    [
        ("a,b", 1),
        (quote("a,b", safe=""), 1),  # a generated client encodes the comma too
        (quote('"a,b","c""d"', safe=""), 2),
        ('"a,b","c""d"', 2),
        ("x,", 3),
        (quote("1/2,%41", safe=""), 4),
    ],
)
async def test_composite_key_is_decoded_once(api: Caller, segment: str, n: int) -> None:
    """Plain, percent-encoded and quoted composite keys all address their row."""
    status, _, body = await api.get(f"/v1/tags/{segment}")
    assert status == 200, body
    assert body["n"] == n


async def test_single_column_key_is_the_whole_segment(api: Caller) -> None:
    """A one-column key needs no quoting: commas and quotes are part of the value."""
    for value, n in (("one,two", 1), ('"q', 2)):
        status, _, body = await api.get(f"/v1/words/{quote(value, safe='')}")
        assert (status, body["n"]) == (200, n)


@pytest.mark.parametrize("segment", ["a", "a,b,c", '"a,b', quote("a,b,c", safe="")])
async def test_malformed_composite_key_is_a_400_saying_how(api: Caller, segment: str) -> None:
    """A composite key with the wrong number of values, or an unclosed quote, is a 400."""
    status, _, body = await api.get(f"/v1/tags/{segment}")
    assert status == 400, body
    assert "tags rows are addressed as {kind},{name}" in body["detail"]


async def test_patch_by_encoded_composite_key(api: Caller) -> None:
    """Writes address rows the same way as reads."""
    path = f"/v1/tags/{quote('a,b', safe='')}"
    status, headers, _ = await api.get(path)
    assert status == 200
    status, _, body = await api.send("PATCH", path, {"n": 10}, **{"If-Match": headers["ETag"]})
    assert (status, body["n"]) == (200, 10)
