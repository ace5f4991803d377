"""Keyed reads that arrive together share one statement (`agent.api.coalesce`): each caller
gets its own row (or 404), a failure reaches every caller of the batch, a caller that leaves
costs the others nothing; on real PostgreSQL and MariaDB under concurrency, and only where
an IN-list is exact (integer keys), never for text keys."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from backends import Backend
from conftest import Caller, module_backend

from bridgehead.agent.api.coalesce import Coalescer


class Source:
    """A fake statement: rows (key, key * 10) for even keys, released by the test."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.failure: Exception | None = None

    async def fetch(self, keys: Sequence[Any]) -> list[tuple[int, int]]:
        self.batches.append(list(keys))
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return [(k, k * 10) for k in reversed(keys) if k % 2 == 0]


async def test_lookups_arriving_while_one_runs_go_together() -> None:
    source = Source()
    together = Coalescer(source.fetch, 0, in_flight=1, most=64)
    first = asyncio.create_task(together.get(2))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(together.get(k)) for k in (4, 5, 6, 4)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await first == (2, 20)
    assert [await t for t in rest] == [(4, 40), None, (6, 60), (4, 40)]
    assert source.batches == [[2], [4, 5, 6]]  # a repeated key is read once


async def test_a_batch_holds_at_most_most_keys_and_in_flight_statements_run() -> None:
    source = Source()
    together = Coalescer(source.fetch, 0, in_flight=2, most=3)
    tasks = [asyncio.create_task(together.get(k)) for k in range(0, 20, 2)]
    await asyncio.sleep(0)
    source.gate.set()
    assert [await t for t in tasks] == [(k, k * 10) for k in range(0, 20, 2)]
    assert source.batches[:2] == [[0], [2]]  # two at once, alone, while not busy
    assert max(len(b) for b in source.batches) == 3
    assert sorted(k for b in source.batches for k in b) == list(range(0, 20, 2))


async def test_a_failure_reaches_every_caller_of_its_batch() -> None:
    source = Source()
    together = Coalescer(source.fetch, 0, in_flight=1, most=64)
    first = asyncio.create_task(together.get(2))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(together.get(k)) for k in (4, 6)]
    await asyncio.sleep(0)
    source.failure = RuntimeError("the database went away")
    source.gate.set()
    for task in (first, *rest):
        with pytest.raises(RuntimeError, match="went away"):
            await task


async def test_a_caller_that_leaves_costs_the_others_nothing() -> None:
    source = Source()
    together = Coalescer(source.fetch, 0, in_flight=1, most=64)
    first = asyncio.create_task(together.get(2))
    await asyncio.sleep(0)
    leaving, staying = (asyncio.create_task(together.get(k)) for k in (4, 6))
    await asyncio.sleep(0)
    leaving.cancel()
    source.gate.set()
    assert await first == (2, 20)
    assert await staying == (6, 60)
    assert leaving.cancelled()


KEYS = 300


def schema(b: Backend) -> list[str]:
    rows = ", ".join(f"({i}, 'row {i}')" for i in range(1, KEYS + 1))
    return [
        "CREATE TABLE ints (id INTEGER NOT NULL PRIMARY KEY, label VARCHAR(20) NOT NULL)",
        f"INSERT INTO ints VALUES {rows}",
        "CREATE TABLE words (w VARCHAR(20) NOT NULL PRIMARY KEY, n INTEGER NOT NULL)",
        "INSERT INTO words VALUES ('abc', 1), ('ABD', 2)",
    ]


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return module_backend(request, tmp_path_factory, "coalesce", schema)


async def test_concurrent_keyed_gets_each_get_their_own_row(
    backend: Backend, run_agent: Any
) -> None:
    resources = {
        "ints": {"source": "db", "table": "ints"},
        "words": {"source": "db", "table": "words"},
    }
    limits = {"requests_per_second": 10_000, "burst": 10_000}
    api: Caller = await run_agent({"db": backend.source}, resources, limits=limits)
    assert api.agent is not None
    adapter = api.agent.pipeline.catalog.adapter("db")
    statements = 0
    fetch = adapter.fetch

    async def counted(sql: str, params: Any, max_rows: int) -> Any:
        nonlocal statements
        statements += 1
        return await fetch(sql, params, max_rows)

    adapter.fetch = counted  # type: ignore[method-assign]
    keys = [*range(1, KEYS + 1), *range(1, 50), 0, KEYS + 1, -5]
    answers = await asyncio.gather(*(api.get(f"/v1/ints/{k}") for k in keys))
    for key, (status, _, body) in zip(keys, answers, strict=True):
        if 1 <= key <= KEYS:
            assert status == 200, body
            assert body == {"id": key, "label": f"row {key}"}
        else:
            assert status == 404, body
    assert statements < len(keys) / 2  # they went together
    # a text key is read alone: MariaDB's collation makes 'ABC' equal 'abc'
    status, _, body = await api.get("/v1/words/ABC")
    assert (status, body["w"] if status == 200 else None) == (
        (200, "abc") if backend.name == "mariadb" else (404, None)
    )
