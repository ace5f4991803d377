# Shared fixtures: a guard against blocking calls on the event loop, the throwaway database
# servers (started once per session), the four contract backends, and a running agent.
from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis  # noqa: F401 - see below
import pytest
import yaml
from backends import Backend, mariadb_backend, postgres_backend, sqlite_backend
from blockbuster import blockbuster_ctx
from browser import Page, chromium_paths, headless_chromium
from dbservers import MariaDBServer, PostgresServer
from debkit import Debs, Dists, build_debs, build_dists
from tunnelkit import Pki, make_pki

from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config

BACKENDS = ["sqlite", "sqlite-odbc", "postgresql", "mariadb"]
pytest_plugins = ["samplefixtures"]  # the sample databases, loaded once per session
# hypothesis is imported above, on the main thread at collection: its pytest plugin would
# otherwise import it at session end, and pytest's assertion rewriter parsing it while a
# test's worker thread is still running trips CPython 3.11's "AST constructor recursion
# depth mismatch" bug.


@pytest.fixture(autouse=True)
def no_blocking_on_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test in which a blocking call runs on the event loop's thread."""
    if request.node.get_closest_marker("allow_blocking"):
        yield
        return
    with blockbuster_ctx() as blockbuster:
        # the one driver call the loop makes: a bounded primary-key seek (adapters.inline)
        for name in ("sqlite3.Connection.execute", "sqlite3.Cursor.fetchmany"):
            blockbuster.functions[name].can_block_in("bridgehead/adapters/inline.py", "seek")
        yield


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were, after a test configured logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    with MariaDBServer() as server:
        yield server


def make_backend(name: str, request: pytest.FixtureRequest, folder: Path, database: str) -> Backend:
    if name in ("sqlite", "sqlite-odbc"):
        return sqlite_backend(folder / f"{database}.db", odbc=name == "sqlite-odbc")
    if name == "postgresql":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        pg.create_database(database)
        return postgres_backend(pg, database)
    maria: MariaDBServer = request.getfixturevalue("mariadb_server")
    maria.create_database(database)
    return mariadb_backend(maria, database)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", maxsplit=1)[0]
    return media in ("application/json", "application/problem+json")


@pytest.fixture
async def pki(tmp_path: Path) -> Pki:
    """A CA, the relay's certificate and a way to issue agent certificates (tests/tunnelkit)."""
    folder = tmp_path / "pki"
    await asyncio.to_thread(folder.mkdir)
    return await asyncio.to_thread(make_pki, folder)


def module_backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    database: str,
    schema: Callable[[Backend], list[str]],
) -> Backend:
    """The backend named by a parametrised fixture, with a fresh database and its schema."""
    b = make_backend(request.param, request, tmp_path_factory.mktemp(request.param), database)
    b.run(schema(b))
    return b


@dataclass
class Caller:
    """An HTTP client for a running agent, holding a key with every scope."""

    base: str
    key: str
    session: aiohttp.ClientSession
    agent: Agent | None = None

    async def send(
        self, method: str, path: str, body: Any = None, key: str | None = None, **headers: str
    ) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {key or self.key}", **headers}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as r:
            raw = await r.read()
            kind = r.headers.get("Content-Type", "")
            data = await r.json(content_type=None) if _is_json(kind) and raw else raw
            return r.status, r.headers.copy(), data

    async def get(
        self, path: str, params: Any = None, key: str | None = None, **headers: str
    ) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {key or self.key}", **headers}
        async with self.session.get(self.base + path, params=params, headers=headers) as r:
            body = await r.read()
            kind = r.headers.get("Content-Type", "")
            data = await r.json(content_type=None) if _is_json(kind) and body else body
            return r.status, r.headers.copy(), data


def agent_config(
    folder: Path, sources: dict[str, Any], resources: dict[str, Any], key: str, **extra: Any
) -> Path:
    scopes = [f"{r}:{access}" for r in resources for access in ("read", "write")]
    scopes += [f"queries:{q}" for q in extra.get("queries", {})]
    scopes += [f"procedures:{p}" for p in extra.get("procedures", {})]
    scopes += [f"jobs:{j}" for j in extra.get("jobs", {})]
    scopes += ["events:read"] if any("events" in r for r in resources.values()) else []
    auth_jwt = extra.pop("auth_jwt", None)
    config = {
        "sources": sources,
        "resources": resources,
        "auth": {
            **({"jwt": auth_jwt} if auth_jwt else {}),
            "api_keys": [
                {
                    "name": "tester",
                    "key_sha256": hashlib.sha256(key.encode()).hexdigest(),
                    "scopes": scopes,
                },
                {"name": "nobody", "key_sha256": hashlib.sha256(b"nobody-key").hexdigest()},
            ],
        },
        "listen": "127.0.0.1:0",
        "admin": None,
        "state_dir": str(folder / "state"),
        **extra,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
async def run_agent(tmp_path: Path) -> AsyncIterator[Any]:
    """A factory: start an agent for the given sources/resources; stopped after the test."""
    started: list[Agent] = []
    session = aiohttp.ClientSession()

    async def start(sources: dict[str, Any], resources: dict[str, Any], **extra: Any) -> Caller:
        key = extra.pop("api_key", None) or secrets.token_urlsafe(16)
        folder = tmp_path / f"agent{len(started)}"
        await asyncio.to_thread(folder.mkdir)
        path = await asyncio.to_thread(agent_config, folder, sources, resources, key, **extra)
        agent = Agent(await asyncio.to_thread(load_config, path))
        await agent.start()
        started.append(agent)
        assert agent.listen_url is not None
        return Caller(agent.listen_url, key, session, agent)

    yield start
    for agent in started:
        await agent.stop()
    await session.close()


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The wheel and the sdist, built once for the session."""
    return build_dists(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def debs(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Debs:
    """Two revisions of the .deb, built once for the session (skipped where they cannot be)."""
    return build_debs(dists, tmp_path_factory.mktemp("debs"), tmp_path_factory.mktemp("repack"))


@pytest.fixture
def page() -> Iterator[Page]:
    """A headless Chromium of the test's own, closed after it (skipped where it is not
    installed)."""
    paths = chromium_paths()
    if paths is None:
        pytest.skip("chromium and chromedriver are not installed (.ci/setup --test)")
    with headless_chromium(paths) as opened:
        yield opened
