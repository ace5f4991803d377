"""Webhooks end to end: a legacy application changes rows in SQLite, the agent captures them,
and the relay, a named consumer of the agent's event log through the tunnel, delivers them to
a receiver the test runs on 127.0.0.1: signed per Standard Webhooks, with CloudEvents' binary
headers, in order per key, retried through 500s and 429s, disabled by a 410 until a replay,
given up into the agent's dead letters after `retry_for`; `bridgehead-relay webhooks list |
replay | dead-letters` show and steer it."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from agentproc import free_port
from conftest import Caller
from polling import wait_for
from receiver import SECRET, Delivery, Receiver, receiving
from test_events import RESOURCES, TOKEN, legacy_changes, legacy_db
from tunnelkit import Pki, reached_both_ways, running_relay

from bridgehead.relay import cli as relay_cli
from bridgehead.relay.app import Relay


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "crm", "agents": ["plant-7"], "resources": ["customers"], "url": url,
            "secret": SECRET, "retry_first": "100ms", "retry_max": "1s", **extra}  # fmt: skip


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "legacy.db"
    await asyncio.to_thread(legacy_db, path)
    return path


@asynccontextmanager
async def _stack(
    pki: Pki,
    database: Path,
    run_agent: Any,
    receiver: Receiver,
    *,
    admin: bool = False,
    **hook: Any,
) -> AsyncIterator[tuple[Relay, Caller]]:
    extra: dict[str, Any] = {"webhooks": [webhook(receiver.url, **hook)]}
    if admin:
        extra["admin"] = f"127.0.0.1:{free_port()}"
    async with (
        running_relay(pki, TOKEN, **extra) as relay,
        reached_both_ways(pki, relay, run_agent, database, RESOURCES, TOKEN,
                          events={"interval": "100ms"}) as (direct, _),
    ):  # fmt: skip
        yield relay, direct


async def consumer(direct: Caller) -> dict[str, Any]:
    """The relay's consumer as the agent keeps it (callers may not read it: the relay's)."""
    assert direct.agent is not None
    assert direct.agent.events is not None
    return await direct.agent.events.consumer("webhook.crm")


async def settled(direct: Caller, check: Any, seconds: float = 20) -> dict[str, Any]:
    """The consumer's state on the agent once `check` holds for it."""
    async with asyncio.timeout(seconds):
        while not check(state := await consumer(direct)):  # noqa: ASYNC110 - the agent's state
            await asyncio.sleep(0.1)
    return state


async def relay_command(*argv: str) -> str:
    """`bridgehead-relay ARGV...`, its output (it must succeed)."""
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return relay_cli.main(list(argv))

    assert await asyncio.to_thread(run) == 0
    return out.getvalue()


async def test_changes_reach_the_subscriber_signed_in_order_and_are_committed(
    pki: Pki, database: Path, run_agent: Any
) -> None:
    """Four changes arrive as four deliveries whose signatures verify, with `webhook-id` the
    event id, the ce- attributes of the CloudEvent and the row as the body; the agent then
    holds the relay's consumer position at the last of them."""
    async with (
        receiving() as receiver,
        _stack(pki, database, run_agent, receiver) as (relay, direct),
    ):
        await asyncio.to_thread(legacy_changes, database)
        await wait_for(lambda: len(receiver.accepted) == 4, 20)
        first = receiver.accepted[0]
        assert first.headers["webhook-id"] == first.headers["ce-id"]
        assert first.headers["ce-type"] == "bridgehead.row.created"
        assert first.headers["ce-source"].endswith("/resources/customers")
        assert first.headers["ce-subject"] == "1"
        assert first.headers["ce-specversion"] == "1.0"
        assert first.body["id"] == 1
        assert receiver.accepted[2].body == {"id": 1, "name": "Ada", "balance": "11.25"}
        assert receiver.accepted[3].body == {"id": 2}
        assert receiver.by_key() == {"customers/1": [1, 3], "customers/2": [2, 4]}
        assert receiver.forged == 0
        state = await settled(direct, lambda s: s["position"] == 4)
        assert state["backlog"] == 0
        assert state["report"]["delivered"] == 4
        listed = relay.webhooks.views()
        assert listed[0]["agents"][0]["agent"] == "plant-7"


async def test_500s_and_429s_are_retried_and_order_per_key_holds(
    pki: Pki, database: Path, run_agent: Any
) -> None:
    """The receiver fails the first three deliveries with 500 and the next two with 429
    (Retry-After: 1): every change still arrives once accepted, in order per key, and the
    failures are in the consumer's report on the agent."""
    answers = iter([(500, {})] * 3 + [(429, {"Retry-After": "1"})] * 2)
    async with (
        receiving() as receiver,
        _stack(pki, database, run_agent, receiver) as (_, direct),
    ):
        receiver.answer = lambda d: next(answers, (204, {}))
        await asyncio.to_thread(legacy_changes, database)
        await wait_for(lambda: len(receiver.accepted) == 4, 30)
        assert receiver.refused == 5
        assert receiver.by_key() == {"customers/1": [1, 3], "customers/2": [2, 4]}
        state = await settled(direct, lambda s: s["position"] == 4)
        assert state["report"]["failures"] == 5
        assert "429" in state["report"]["last_error"]


async def test_a_410_disables_the_subscription_until_a_replay(
    pki: Pki, database: Path, run_agent: Any
) -> None:
    """410 Gone stops deliveries and the agent keeps the subscription disabled (so a relay
    restart does not resume it); `webhooks list` says so; `webhooks replay --from 1` enables
    it and delivers everything again."""
    async with (
        receiving() as receiver,
        _stack(pki, database, run_agent, receiver, admin=True) as (relay, direct),
    ):
        receiver.answer = lambda d: (410, {})
        await asyncio.to_thread(legacy_changes, database)
        state = await settled(direct, lambda s: s["report"].get("disabled"))
        assert "410" in state["report"]["disabled"]
        assert state["position"] == 0
        config = str(relay.config_file)
        listing = await relay_command("webhooks", "list", "-c", config)
        assert "crm" in listing
        assert "disabled: HTTP 410" in listing
        refused = receiver.refused
        await asyncio.sleep(0.5)
        assert receiver.refused == refused, "a disabled subscription kept delivering"
        receiver.answer = lambda d: (204, {})
        replayed = await relay_command("webhooks", "replay", "crm", "--from", "1", "-c", config)
        assert "plant-7: delivering again after sequence 0" in replayed
        await wait_for(lambda: len(receiver.accepted) == 4, 20)
        state = await settled(direct, lambda s: s["position"] == 4)
        assert state["report"]["disabled"] is None


async def test_an_event_failing_past_retry_for_is_a_dead_letter_on_the_agent(
    pki: Pki, database: Path, run_agent: Any
) -> None:
    """Row 2's deliveries always fail: after `retry_for` they are given up, kept as dead
    letters on the agent with the reason, and the position passes them; row 1's events are
    delivered meanwhile; `webhooks dead-letters` lists them."""

    def answer(delivery: Delivery) -> tuple[int, dict[str, str]]:
        return (500, {}) if delivery.headers["ce-subject"] == "2" else (204, {})

    async with (
        receiving() as receiver,
        _stack(pki, database, run_agent, receiver, admin=True, retry_for="700ms") as (relay,
                                                                                     direct),
    ):  # fmt: skip
        receiver.answer = answer
        await asyncio.to_thread(legacy_changes, database)
        state = await settled(direct, lambda s: s["position"] == 4)
        assert [d["seq"] for d in state["dead_letters"]] == [2, 4]
        assert "HTTP 500" in state["dead_letters"][0]["reason"]
        assert receiver.by_key() == {"customers/1": [1, 3]}
        printed = await relay_command("webhooks", "dead-letters", "crm", "-c",
                                      str(relay.config_file))  # fmt: skip
        assert "plant-7" in printed
        assert "HTTP 500" in printed
        as_json = orjson.loads(await relay_command("webhooks", "dead-letters", "crm", "--json",
                                                   "-c", str(relay.config_file)))  # fmt: skip
        assert [d["seq"] for d in as_json[0]["dead_letters"]] == [2, 4]


async def test_callers_cannot_move_or_read_the_relays_consumers(
    database: Path, run_agent: Any
) -> None:
    """`webhook.*` consumers are the relay's: a caller with events:read is refused reading
    from, acking, rewinding or inspecting one (403), and its own consumers still work."""
    agent = await run_agent({"db": {"sqlite": str(database)}}, RESOURCES, api_key=TOKEN,
                            events={"interval": "100ms"})  # fmt: skip
    for method, path, body in [
        ("GET", "/v1/events/consumers/webhook.crm", None),
        ("POST", "/v1/events/consumers/webhook.crm/ack", {"upto": 99}),
        ("POST", "/v1/events/consumers/webhook.crm/rewind", {"to": 0}),
        ("GET", "/v1/events?consumer=webhook.crm", None),
    ]:
        status, _, problem = await agent.send(method, path, body)
        assert status == 403, (path, problem)
        assert "relay" in problem["detail"] or "webhook.crm" in problem["detail"]
    status, _, state = await agent.get("/v1/events/consumers/mine")
    assert status == 200
    assert state["position"] == 0
