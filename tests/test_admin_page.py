# The health page at / on the admin listener, in a real headless Chromium against a real
# agent on 127.0.0.1: a throwaway PostgreSQL stopped during the test, a real relay over
# mutual TLS for the tunnel; the login form with an admin token; the actions with and
# without their CSRF token. Browser calls block, so they run through asyncio.to_thread.
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser import Page
from dbservers import PostgresServer
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from tunnelkit import Pki, running_relay, tunnel_section

from bridgehead.agent.admin.page import PAGE_CSP

ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOKEN = "cloud-token-0123456789"
REFRESH = 3.0
"""The page's refresh period (REFRESH_MS in page.js)."""
FOCUSED = "return document.activeElement === document.querySelector(arguments[0])"


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, so stopping it spares every other test."""
    with PostgresServer() as server:
        server.create_database("page_probe")
        yield server


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 11)])
    db.close()


def admin_url(caller: Any) -> str:
    assert caller.agent is not None
    assert caller.agent.admin_url is not None
    return str(caller.agent.admin_url)


async def sqlite_agent(run_agent: Any, tmp_path: Path, admin: Any, **extra: Any) -> Any:
    await asyncio.to_thread(make_db, tmp_path / "t.db")
    sources = {"db": {"sqlite": str(tmp_path / "t.db")}, **extra.pop("sources", {})}
    resources = {"t": {"source": "db", "table": "t", "key": ["id"]}}
    return await run_agent(sources, resources, admin=admin, **extra)


def row_text(page: Page, table: str, key: str) -> str:
    return page.text(f'#{table} tbody tr[data-key="{key}"]')


async def post(url: str, **headers: str) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers) as r:
        return r.status, r.content_type, await r.json(content_type=None)


@pytest.mark.allow_blocking  # pg_ctl stop/start run here, between the page's refreshes
async def test_the_page_shows_a_postgresql_source_going_down_within_one_refresh(
    own_postgres: PostgresServer, run_agent: Any, tmp_path: Path, page: Page
) -> None:
    """The page loads with no console error and shows the state, both sources up, the
    requests with their sparkline and, for an agent without jobs, "no jobs"; once the
    PostgreSQL server stops, its row says down within one refresh (plus its probe) and the
    state is degraded naming it; "Test
    connection" shows the failure there and, reached with Tab and pressed with Enter, the
    answer of the other source, whose button keeps the focus across refreshes; a
    screenshot is saved in the test's folder."""
    odbc = own_postgres.odbc_connection_string("page_probe")
    pg = {"pg": {"odbc": odbc, "query_timeout": "5s"}}
    api = await sqlite_agent(run_agent, tmp_path, "127.0.0.1:0", sources=pg)
    for key in (1, 2, 3, 999):
        await api.get(f"/v1/t/{key}")
    url = admin_url(api)
    await asyncio.to_thread(page.open, url + "/")
    assert (await asyncio.to_thread(page.wait_text, "#state", "OK")) == "OK"
    assert "up" in await asyncio.to_thread(row_text, page, "sources", "pg")
    assert "postgresql" in await asyncio.to_thread(row_text, page, "sources", "pg")
    requests = await asyncio.to_thread(page.text, "#requests tbody")
    assert requests.startswith("t read 4 0")
    assert await asyncio.to_thread(page.find, "#requests tbody svg polyline")
    assert await asyncio.to_thread(lambda: page.find("#jobs-empty").is_displayed())  # no jobs
    assert not await asyncio.to_thread(lambda: page.find("#jobs-body").is_displayed())
    assert await asyncio.to_thread(page.console_errors) == []

    await asyncio.to_thread(own_postgres.pause)
    started = asyncio.get_running_loop().time()
    down = await asyncio.to_thread(
        page.wait_for, lambda: "down" in row_text(page, "sources", "pg"), REFRESH + 6
    )
    assert down
    assert asyncio.get_running_loop().time() - started < REFRESH + 2 + 2  # refresh + probe
    assert await asyncio.to_thread(page.text, "#state") == "DEGRADED"
    assert "source pg does not answer" in await asyncio.to_thread(page.text, "#reason")

    await asyncio.to_thread(page.click, '#sources tr[data-key="pg"] button')
    failed = await asyncio.to_thread(page.wait_text, '#sources tr[data-key="pg"] output', "Failed")
    assert failed.startswith("Failed: ")
    db_button = '#sources tr[data-key="db"] button'
    await asyncio.to_thread(tab_to, page, db_button)
    await asyncio.to_thread(page.find(db_button).send_keys, Keys.ENTER)
    await asyncio.to_thread(page.wait_text, '#sources tr[data-key="db"] output', "Answered in")
    await asyncio.sleep(REFRESH + 0.5)  # a refresh updates the row in place: focus stays
    assert await asyncio.to_thread(page.driver.execute_script, FOCUSED, db_button)
    shot = await asyncio.to_thread(page.screenshot, tmp_path / "health-page.png")
    assert (await asyncio.to_thread(shot.read_bytes))[:8] == b"\x89PNG\r\n\x1a\n"
    assert await asyncio.to_thread(page.console_errors) == []
    await asyncio.to_thread(own_postgres.resume)


async def test_with_a_token_the_page_signs_in_and_its_actions_need_the_csrf_token(
    pki: Pki, run_agent: Any, tmp_path: Path, page: Page
) -> None:
    """With an admin token the page first asks for it (a wrong one is refused), then keeps
    an HttpOnly SameSite=Strict session; "Reconnect" and "Reconnect all" redial the tunnel
    connections; the same POSTs without the CSRF token, or with another, get a 403
    problem, from inside the page (its cookie sent) and from outside with the token."""
    cert, key = await asyncio.to_thread(pki.agent, "agent", "plant-7", "plants")
    async with running_relay(pki, TOKEN) as relay:
        assert relay.agents_address is not None
        port = relay.agents_address[1]
        tunnel = tunnel_section(pki, port, cert, key, backoff={"base": "0.05s", "cap": "0.2s"})
        admin = {"address": "127.0.0.1:0", "token": ADMIN_TOKEN}
        api = await sqlite_agent(run_agent, tmp_path, admin, tunnel=tunnel)
        url = admin_url(api)
        await asyncio.to_thread(sign_in, page, url)
        await asyncio.to_thread(page.wait_text, "#tunnel-summary", "2 of 2 connections up")
        cookie = (await asyncio.to_thread(page.driver.get_cookies))[0]
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
        assert "plant-7" in await asyncio.to_thread(page.text, "#certificate")

        await asyncio.to_thread(page.click, '#tunnel tr[data-key="0"] button')
        one = '#tunnel tr[data-key="0"] output'
        assert await asyncio.to_thread(page.wait_text, one, "Reconnected", 25) == "Reconnected 1"
        await asyncio.to_thread(page.click, "#reconnect-all")
        all_done = await asyncio.to_thread(page.wait_text, "#tunnel-result", "Reconnected", 25)
        assert all_done == "Reconnected 2"
        connections = api.agent.tunnel.status.slots
        assert [connections[n].reconnects for n in (0, 1)] == [2, 1]
        await asyncio.to_thread(page.wait_text, "#tunnel-summary", "2 of 2 connections up")
        assert await asyncio.to_thread(page.console_errors) == []

        for headers in ({}, {"X-CSRF-Token": "not-the-session-token"}):
            status, kind, _ = await asyncio.to_thread(
                page.fetch, "/actions/tunnel/reconnect", "POST", headers
            )
            assert (status, kind) == (403, "application/problem+json"), headers
        status, kind, body = await post(
            url + "/actions/sources/db/test", Authorization=f"Bearer {ADMIN_TOKEN}"
        )
        assert (status, kind, body["status"]) == (403, "application/problem+json", 403)
        assert "X-CSRF-Token" in body["detail"]
        assert (await post(url + "/actions/tunnel/reconnect"))[0] == 401
        assert [connections[n].reconnects for n in (0, 1)] == [2, 1]


def tab_to(page: Page, css: str, presses: int = 20) -> None:
    """Press Tab from the top of the page until `css` has the focus."""
    page.driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    for _ in range(presses):
        ActionChains(page.driver).send_keys(Keys.TAB).perform()
        if page.driver.execute_script(FOCUSED, css):
            return
    raise AssertionError(f"{css} not reached with {presses} Tab presses")


def sign_in(page: Page, url: str) -> None:
    """Open the page, try a wrong token, then the right one, and wait for the page."""
    page.open(url + "/")
    page.fill("#token", "not-the-admin-token-at-all")
    page.click("button[type=submit]")
    page.wait_text("[role=alert]", "not this agent's admin token")
    page.console_errors()  # the refused sign-in's 401 is logged: expected, set aside
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.wait_text("#state", "OK", 15)


async def test_the_page_is_served_with_its_strict_csp_and_a_session(
    run_agent: Any, tmp_path: Path
) -> None:
    """Without a token, GET / is the page with its CSP (own script and style only), a
    session cookie and the CSRF token in a meta element; its scripts and style sheet come
    from the package; an action with that cookie and token answers, without the token 403;
    a Host that is not loopback (a rebound DNS name) gets no session."""
    api = await sqlite_agent(run_agent, tmp_path, "127.0.0.1:0")
    url = admin_url(api)
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(url + "/") as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == PAGE_CSP
            assert r.headers["X-Frame-Options"] == "DENY"
            assert "HttpOnly" in r.headers["Set-Cookie"]
            assert "SameSite=Strict" in r.headers["Set-Cookie"]
            html = await r.text()
        csrf = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        assert len(csrf) > 30
        assets = (("/page.js", "text/javascript"), ("/dom.js", "text/javascript"),
                  ("/events.js", "text/javascript"), ("/page.css", "text/css"))  # fmt: skip
        for path, kind in assets:
            async with session.get(url + path) as r:
                assert (r.status, r.content_type) == (200, kind)
        async with session.post(url + "/actions/sources/db/test") as r:
            assert r.status == 403
        headers = {"X-CSRF-Token": csrf}
        async with session.post(url + "/actions/sources/db/test", headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["up"] is True
        async with session.post(url + "/actions/sources/nope/test", headers=headers) as r:
            assert r.status == 404
        async with session.post(url + "/actions/tunnel/reconnect", headers=headers) as r:
            assert r.status == 409  # no tunnel configured
            assert "no tunnel" in (await r.json(content_type=None))["detail"]
    rebound = {"Host": f"attacker.example:{url.rsplit(':', 1)[1]}"}
    async with aiohttp.ClientSession() as fresh, fresh.get(url + "/", headers=rebound) as r:
        assert r.status == 403  # no session, so no CSRF token, for a DNS name pointed here
        assert "Set-Cookie" not in r.headers
