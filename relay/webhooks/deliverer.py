"""One subscription's deliveries from one agent: the relay reads the agent's event log as the
consumer `webhook.NAME` over its own control stream (`/.bridgehead/events`), delivers by the
plan (relay.webhooks.plan) and commits the position back.

Rules (what a relay killed at each step leaves; it keeps nothing on disk):
- The agent's committed position moves only past events delivered or given up, so a relay
  killed (or a link lost) before a commit delivers those events again, from the agent's
  committed position, with the same `webhook-id`: at least once, never skipped.
- An event given up goes into the agent's dead letters in the same commit that passes it.
- The consumer's report on the agent (failures, last error, disabled) is written with each
  commit; a subscription a 410 disabled stays disabled across relay restarts until `webhooks
  replay` rewinds it.
- Commits go at most every `COMMIT_EVERY` seconds while something changed, and once more
  when the stream ends (if the link still lives).
- A link that goes away ends the session; the next one starts on another live link of the
  agent, or when the agent connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from bridgehead.common.tunnel import control
from bridgehead.relay.link import AgentLink, BadExchange, BodyCut, LinkClosed
from bridgehead.relay.tokens import utc_now
from bridgehead.relay.webhooks.config import WebhookConfig
from bridgehead.relay.webhooks.plan import Pending, Plan, Retry
from bridgehead.relay.webhooks.send import Outcome, deliver

log = logging.getLogger("bridgehead.relay")
COMMIT_EVERY = 1.0
WINDOW = 10_000
"""Undelivered events held per agent and subscription before reading pauses."""
RECONNECT_AFTER = 1.0
FINAL_COMMIT = 5.0
"""The longest wait for the commit a session ends with."""
REFUSED_WAIT = 30.0
"""How long to wait after an agent refused the events stream (no events captured, ...)."""


class Refused(Exception):
    """The agent answered the events stream or a commit with a problem (logged once)."""


@dataclass
class Subscription:
    """A webhook subscription as the relay runs it: its config, signer and shared state."""

    config: WebhookConfig
    signer: Webhook
    disabled: str | None = None
    """Why deliveries stopped (a 410), or None."""
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def of(cls, config: WebhookConfig) -> Subscription:
        return cls(config, Webhook(config.secret))

    def disable(self, why: str) -> None:
        self.disabled = why
        self.stopped.set()

    def enable(self) -> None:
        self.disabled = None
        self.stopped.clear()


Counted = Callable[[str, str], None]
"""(subscription, outcome): delivered, failed or dead."""


class AgentDelivery:
    def __init__(
        self,
        subscription: Subscription,
        agent_id: str,
        links: Callable[[], list[AgentLink]],
        http: aiohttp.ClientSession,
        *,
        counted: Counted = lambda name, outcome: None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.subscription, self.agent_id, self.links, self.http = (
            subscription, agent_id, links, http,
        )  # fmt: skip
        self.counted, self.clock, self.wallclock, self.sleep = counted, clock, wallclock, sleep
        self.jitter = jitter
        self.plan: Plan | None = None
        self.position = 0
        self.delivered = 0
        self.refused: str | None = None
        self.trimmed = 0
        """Events the agent's retention dropped before they were delivered."""
        self._committed: tuple[Any, ...] = ()

    @property
    def config(self) -> WebhookConfig:
        return self.subscription.config

    async def run(self) -> None:
        """Deliver while the agent has a live link and the subscription is enabled."""
        while not self.subscription.stopped.is_set():
            link = next(iter(self.links()), None)
            if link is None:
                return
            try:
                await self._session(link)
            except (LinkClosed, BodyCut, BadExchange) as exc:
                log.info("webhook %s: agent %s: events stream ended: %s", self.config.name,
                         self.agent_id, exc)  # fmt: skip
            except Refused as exc:
                if str(exc) != self.refused:
                    log.warning("webhook %s: agent %s: %s; trying again every %g s",
                                self.config.name, self.agent_id, exc, REFUSED_WAIT)  # fmt: skip
                self.refused = str(exc)
                await self.sleep(REFUSED_WAIT)
                continue
            except Exception:  # an answer we cannot read: logged, and tried again later
                log.exception("webhook %s: agent %s: deliveries failed; trying again in %g s",
                              self.config.name, self.agent_id, REFUSED_WAIT)  # fmt: skip
                await self.sleep(REFUSED_WAIT)
                continue
            await self.sleep(RECONNECT_AFTER)

    async def _session(self, link: AgentLink) -> None:
        consumer = f"{control.EVENTS}/consumers/{self.config.consumer}?dead_letters=0"
        state = await self._json(link, "GET", consumer)
        report = state.get("report") or {}
        if report.get("disabled"):
            self.subscription.disable(str(report["disabled"]))
            return
        self.position = int(state.get("position", 0))
        self._note_trimmed(int(state.get("first_seq", 0)))
        retry = Retry(self.config.retry_first, self.config.retry_max, self.config.retry_for)
        self.plan = plan = Plan(self.config.parallel, WINDOW, retry, self.position,
                                random=self.jitter)  # fmt: skip
        self._committed = ()
        sid, reply = await link.request(
            "GET", f"{control.EVENTS}?{self._query()}", [("accept", "application/x-ndjson")],
            None, control=True,
        )  # fmt: skip
        try:
            if reply.status != 200:
                raise Refused(_problem(reply.status, await _excerpt(reply.body)))
            self.refused = None
            await _first_failure(
                self._read(plan, reply.body), self._dispatch(plan), self._commits(link, plan),
                self.subscription.stopped.wait(),
            )  # fmt: skip
        finally:
            await link.cancel(sid)
            if not link.closed.is_set():  # what is done so far, bounded: the link may be ending
                with contextlib.suppress(LinkClosed, BodyCut, BadExchange, Refused,
                                         TimeoutError):  # fmt: skip
                    async with asyncio.timeout(FINAL_COMMIT):
                        await self._commit(link, plan)
            self.plan = None

    def _query(self) -> str:
        query = {"consumer": self.config.consumer, "types": ",".join(self.config.types)}
        if self.config.resources:
            query["resources"] = ",".join(self.config.resources)
        return urlencode(query)

    async def _read(self, plan: Plan, body: AsyncIterator[bytes]) -> None:
        rest = b""
        async for chunk in body:
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    record = orjson.loads(line)
                    while not plan.has_room:
                        await self._waiter().wait()
                    plan.add(Pending(int(record["sequence"]), str(record["id"]),
                                     str(record["partitionkey"]), record, len(line)))  # fmt: skip
                    self._wake()
        raise BodyCut("the agent ended the events stream")

    async def _dispatch(self, plan: Plan) -> None:
        sending: set[asyncio.Task[None]] = set()
        try:
            while True:
                for item in plan.take(self.clock()):
                    task = asyncio.create_task(self._send(plan, item))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                due, changed = plan.next_due(self.clock()), self._waiter()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), due)
        finally:
            for task in sending:
                task.cancel()

    async def _send(self, plan: Plan, item: Pending) -> None:
        try:
            outcome = await deliver(self.http, self.config, self.subscription.signer,
                                    item.record, self.wallclock())  # fmt: skip
        except Exception as exc:  # never leave the event in flight: a failure, retried
            log.exception("webhook %s: delivery of event %s failed", self.config.name, item.id)
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        if outcome.delivered:
            plan.delivered(item)
            self.delivered += 1
            self.counted(self.config.name, "delivered")
        elif outcome.gone:
            log.error("webhook %s: %s answered %s: the subscription is disabled until "
                      "`bridgehead-relay webhooks replay %s`", self.config.name,
                      self.config.url, outcome.why, self.config.name)  # fmt: skip
            self.subscription.disable(outcome.why)
        else:
            self._failed(plan, item, outcome)
        self._wake()

    def _failed(self, plan: Plan, item: Pending, outcome: Outcome) -> None:
        dead = plan.failed(item, self.clock(), outcome.why, outcome.retry_after)
        self.counted(self.config.name, "dead" if dead else "failed")
        if dead:
            log.error("webhook %s: event %s (agent %s, sequence %d) failed for %g s and goes "
                      "to the dead letters: %s", self.config.name, item.id, self.agent_id,
                      item.seq, self.config.retry_for, outcome.why)  # fmt: skip
        elif item.attempts == 1:
            log.warning("webhook %s: delivery of event %s failed (%s); retrying",
                        self.config.name, item.id, outcome.why)  # fmt: skip

    async def _commits(self, link: AgentLink, plan: Plan) -> None:
        while True:
            await self.sleep(COMMIT_EVERY)
            await self._commit(link, plan)

    async def _commit(self, link: AgentLink, plan: Plan) -> None:
        upto = plan.committable()
        dead = plan.dead_upto(upto)
        report = self.report()
        now = (upto, tuple(d.seq for d in dead), report)
        if now == self._committed:
            return
        message = {
            "upto": upto, "report": report,
            "dead": [{"seq": d.seq, "id": d.id, "reason": d.last_error} for d in dead],
        }  # fmt: skip
        answer = await self._json(link, "POST", f"{control.EVENTS}/consumers/"
                                  f"{self.config.consumer}/ack", message)  # fmt: skip
        plan.recorded(dead)
        self.position = int(answer.get("position", upto))
        self._committed = now

    def report(self) -> dict[str, Any]:
        """How the deliveries go, as the agent's consumer report keeps it."""
        plan = self.plan
        return {
            "delivered": self.delivered, "failures": plan.failures if plan else 0,
            "last_error": plan.last_error if plan else "", "undelivered": plan.undone if plan
            else 0, "disabled": self.subscription.disabled, "trimmed": self.trimmed,
        }  # fmt: skip

    def _note_trimmed(self, first_seq: int) -> None:
        """Events the agent's retention dropped before this subscription delivered them:
        lost to it, said once as an error and counted in the report."""
        missed = first_seq - 1 - self.position
        if first_seq and missed > 0:
            self.trimmed += missed
            log.error("webhook %s: agent %s dropped %d events (sequences %d to %d) by its "
                      "retention before they were delivered; lengthen events.retention on the "
                      "agent", self.config.name, self.agent_id, missed, self.position + 1,
                      first_seq - 1)  # fmt: skip

    async def _json(
        self, link: AgentLink, method: str, path: str, message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        status, body = await link.exchange(method, path, message)
        if status != 200:
            raise Refused(_problem(status, body))
        answer = orjson.loads(body)
        return answer if isinstance(answer, dict) else {}

    # One wake-up for the reader (room), the dispatcher (work) and the sends (done). The
    # event is taken before the await, so a wake-up between the two is never missed.
    _event: asyncio.Event | None = None

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    def _waiter(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event


async def _first_failure(*steps: Awaitable[Any]) -> None:
    """Run `steps` together until the first one ends (or fails); then stop the others."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _excerpt(body: AsyncIterator[bytes], limit: int = 4096) -> bytes:
    """The start of an answer's body, the rest left unread."""
    got = b""
    async for chunk in body:
        got += chunk
        if len(got) >= limit:
            break
    return got[:limit]


def _problem(status: int, body: bytes) -> str:
    try:
        detail = orjson.loads(body).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        detail = body[:200].decode(errors="replace")
    return f"the agent answered {status}: {detail}"
