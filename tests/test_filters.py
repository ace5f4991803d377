# Filters on real databases: `like` patterns where `*` and `%` are the wildcards, `_` is a
# literal and `\` escapes; columns served as text (enums, arrays, json) filtered as text;
# MariaDB's BOOLEAN (tinyint(1)) a boolean; operators a type does not support refused at
# parse time with the list of those it does.
from __future__ import annotations

from typing import Any

import pytest
from backends import Backend
from conftest import BACKENDS, Caller, module_backend

WORDS = ["a_c", "abc", "a%c", "a*c", "a\\c", "a!c", "xyz"]


def schema(b: Backend) -> list[str]:
    rows = ", ".join(f"({i}, '{w}')" for i, w in enumerate(WORDS))
    if b.name == "mariadb":  # backslash is an escape in MariaDB string literals
        rows = rows.replace("\\", "\\\\")
    return [
        "CREATE TABLE words (id INTEGER NOT NULL PRIMARY KEY, w VARCHAR(10) NOT NULL)",
        f"INSERT INTO words VALUES {rows}",
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "filters", schema)


@pytest.fixture
async def api(backend: Backend, run_agent: Any) -> Caller:
    caller: Caller = await run_agent(
        {"db": backend.source}, {"words": {"source": "db", "table": "words"}}
    )
    return caller


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("a_c", ["a_c"]),  # `_` is literal, not any one character
        ("a*c", ["a_c", "abc", "a%c", "a*c", "a\\c", "a!c"]),
        ("a%c", ["a_c", "abc", "a%c", "a*c", "a\\c", "a!c"]),
        ("a\\%c", ["a%c"]),
        ("a\\*c", ["a*c"]),
        ("a\\\\c", ["a\\c"]),
        ("a!c", ["a!c"]),  # the escape character Bridgehead binds with is literal too
        ("*y*", ["xyz"]),
    ],
)
async def test_like_patterns(api: Caller, pattern: str, matches: list[str]) -> None:
    """`like` matches with `*`/`%` as wildcards and every other character literal."""
    status, _, body = await api.get("/v1/words", {"w": f"like.{pattern}", "order": "id"})
    assert status == 200, body
    assert [r["w"] for r in body["items"]] == matches


@pytest.mark.parametrize(("params", "detail"), [
    ({"id": "like.1*"}, "filter id: like does not apply to integer columns; use one of eq"),
    ({"id": "eq.99999999999999999999999"}, "filter id: '99999999999999999999999': expected an"),
])  # fmt: skip
async def test_unsupported_operators_and_values_are_400(
    api: Caller, params: dict[str, str], detail: str
) -> None:
    """An operator the column's type lacks, or a value past its range, is a 400 saying why."""
    status, _, body = await api.get("/v1/words", params)
    assert status == 400, body
    assert body["detail"].startswith(detail)


PG_TEXT_TYPES = [
    "CREATE TYPE rating AS ENUM ('G', 'PG', 'R')",
    "CREATE TABLE films (id INTEGER PRIMARY KEY, rating rating, tags TEXT[], doc JSONB, "
    "price MONEY)",
    "INSERT INTO films VALUES (1, 'G', '{a,b}', '{\"k\": 1}', 12.5), "
    "(2, 'R', '{c}', '{\"k\": 2}', 3), (3, NULL, NULL, NULL, NULL)",
]
MARIADB_TEXT_TYPES = [
    "CREATE TABLE films (id INTEGER PRIMARY KEY, rating ENUM('G','PG','R') NULL, "
    "special SET('a','b','c') NULL, kids BOOLEAN NULL)",
    "INSERT INTO films VALUES (1, 'G', 'a,b', 1), (2, 'R', 'c', 0), (3, NULL, NULL, 5)",
]


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def text_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Backend:
    statements = PG_TEXT_TYPES if request.param == "postgresql" else MARIADB_TEXT_TYPES
    return module_backend(request, tmp_path_factory, "texttypes", lambda b: statements)


@pytest.fixture
async def films(text_backend: Backend, run_agent: Any) -> Caller:
    resources = {"films": {"source": "db", "table": "films"}}
    caller: Caller = await run_agent({"db": text_backend.source}, resources)
    return caller


async def ids(api: Caller, **params: str) -> list[int]:
    status, _, body = await api.get("/v1/films", {**params, "order": "id"})
    assert status == 200, body
    return [r["id"] for r in body["items"]]


async def test_types_served_as_text_are_filtered_as_text(
    films: Caller, text_backend: Backend
) -> None:
    """eq, in and like work on enums, sets, arrays and json by their text; order is refused."""
    assert await ids(films, rating="eq.G") == [1]
    assert await ids(films, rating="in.(R,PG)") == [2]
    assert await ids(films, rating="neq.G") == [2]
    assert await ids(films, rating="like.*R*") == [2]
    if text_backend.name == "postgresql":
        assert await ids(films, tags="eq.{a,b}") == [1]
        assert await ids(films, doc='like.*"k": 2*') == [2]
        assert await ids(films, price="like.$12.50") == [1]
    else:
        assert await ids(films, special="like.*b*") == [1]
    status, _, body = await films.get("/v1/films", {"order": "rating"})
    assert status == 400
    assert "cannot be ordered by" in body["detail"]
    status, _, body = await films.get("/v1/films", {"rating": "gt.G"})
    assert status == 400
    assert "gt does not apply" in body["detail"]


async def test_mariadb_boolean_is_a_boolean(films: Caller, text_backend: Backend) -> None:
    """MariaDB's BOOLEAN (tinyint(1)) is served as true/false and filtered with is.true;
    a value other than 0 and 1 is served as its text."""
    if text_backend.name != "mariadb":
        pytest.skip("BOOLEAN as tinyint(1) is MariaDB's")
    status, _, body = await films.get("/v1/films", {"order": "id", "select": "id,kids"})
    assert status == 200, body
    assert body["items"] == [
        {"id": 1, "kids": True},
        {"id": 2, "kids": False},
        {"id": 3, "kids": "5"},
    ]
    assert await ids(films, kids="is.true") == [1]
    assert await ids(films, kids="is.false") == [2]


async def test_repeated_select_and_order_are_lists(api: Caller) -> None:
    """`select=a&select=b` is `select=a,b` (clients that ignore `explode: false` send arrays
    so), the same for order; a repeated limit is still a 400."""
    params = [
        ("select", "id"),
        ("select", "w"),
        ("order", "w.desc"),
        ("order", "id"),
        ("limit", "2"),
    ]
    status, _, body = await api.get("/v1/words", params)
    assert status == 200, body
    assert body["items"] == [{"id": 6, "w": "xyz"}, {"id": 1, "w": "abc"}]
    status, _, body = await api.get("/v1/words", [("limit", "1"), ("limit", "2")])
    assert status == 400
    assert body["detail"] == "limit is given twice; give it once"
