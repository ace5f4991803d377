"""The relay's webhook deliveries: one `AgentDelivery` per subscription and connected agent it
covers, started when the agent's first link is admitted, and what the admin port and
`bridgehead-relay webhooks` ask of them.

Rules:
- A subscription's deliveries from an agent run while the agent has a live link; a link
  admitted for an agent whose delivery has ended starts it again.
- `replay NAME --from SEQ` rewinds the consumer on each agent it names (or every connected
  agent the subscription covers) to just before SEQ, clears the subscription's disabled state
  and starts delivering again; `dead-letters NAME` and the consumer states are read from the
  agents, where they are kept.
- The metrics: deliveries by outcome, and per subscription and agent the events undelivered
  and the age of the oldest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridgehead.common.tunnel import control
from bridgehead.relay.link import AgentLink, BadExchange, BodyCut, LinkClosed
from bridgehead.relay.registry import Registry
from bridgehead.relay.tokens import utc_now
from bridgehead.relay.webhooks.config import WebhookConfig
from bridgehead.relay.webhooks.deliverer import AgentDelivery, Refused, Subscription

log = logging.getLogger("bridgehead.relay")
AGENT_ERRORS = (LinkClosed, BodyCut, BadExchange, Refused)
LISTING = 1 << 20
"""The largest consumer state (with its dead letters) read from an agent."""


class UnknownWebhook(LookupError):
    """No subscription of that name in relay.yaml (the admin port answers 404)."""


class Webhooks:
    def __init__(
        self,
        configs: tuple[WebhookConfig, ...],
        registry: Registry,
        metrics: CollectorRegistry,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.registry, self.clock = registry, clock
        self.subscriptions = {c.name: Subscription.of(c) for c in configs}
        self._deliveries: dict[tuple[str, str], AgentDelivery] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._replaying: set[tuple[str, str]] = set()
        """Deliveries a replay has stopped and will start again: a link joining meanwhile
        must not start one from the position before the rewind."""
        self._http: aiohttp.ClientSession | None = None
        self._outcomes = Counter(
            "bridgehead_relay_webhook_deliveries", "Webhook delivery attempts by outcome.",
            ["webhook", "outcome"], registry=metrics,
        )  # fmt: skip
        metrics.register(_Backlog(self))

    async def start(self) -> None:
        if not self.subscriptions:
            return
        self._http = aiohttp.ClientSession(auto_decompress=False, trust_env=False)
        self.registry.watch(self.joined)
        for link in self.registry.links():
            self.joined(link)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def joined(self, link: AgentLink) -> None:
        """An agent's link was admitted: start each delivery it needs that is not running."""
        agent, group = link.identity.agent_id, link.identity.group
        for name, subscription in self.subscriptions.items():
            if subscription.config.covers(agent, group) and not subscription.disabled:
                self._start(name, agent)

    def _start(self, name: str, agent: str) -> None:
        running = self._tasks.get((name, agent))
        busy = running is not None and not running.done()
        if busy or self._http is None or (name, agent) in self._replaying:
            return
        delivery = AgentDelivery(
            self.subscriptions[name], agent, lambda: self.registry.agent_links(agent),
            self._http, counted=self._counted,
        )  # fmt: skip
        self._deliveries[(name, agent)] = delivery
        self._tasks[(name, agent)] = asyncio.create_task(delivery.run())

    def _counted(self, name: str, outcome: str) -> None:
        self._outcomes.labels(webhook=name, outcome=outcome).inc()

    def subscription(self, name: str) -> Subscription:
        if name not in self.subscriptions:
            known = ", ".join(self.subscriptions) or "none"
            raise UnknownWebhook(f"no webhook is named {name!r} in relay.yaml (known: {known})")
        return self.subscriptions[name]

    def _agents(self, subscription: Subscription) -> list[str]:
        """The connected agents the subscription covers."""
        return sorted({
            link.identity.agent_id for link in self.registry.links()
            if subscription.config.covers(link.identity.agent_id, link.identity.group)
        })  # fmt: skip

    def views(self) -> list[dict[str, Any]]:
        """Each subscription, and its deliveries from each agent, for `webhooks list`."""
        out = []
        for name, subscription in self.subscriptions.items():
            agents = []
            for agent in self._agents(subscription):
                delivery = self._deliveries.get((name, agent))
                agents.append({"agent": agent, "position": delivery.position if delivery else 0,
                               **(delivery.report() if delivery else {}),
                               "oldest_undelivered": _oldest(delivery)})  # fmt: skip
            out.append({"name": name, "url": _shown(subscription.config.url),
                        "disabled": subscription.disabled, "agents": agents})  # fmt: skip
        return out

    async def consumers(self, name: str) -> list[dict[str, Any]]:
        """The subscription's consumer state on each connected agent it covers (dead letters
        included), as the agents keep it; an agent that cannot answer says why."""
        subscription = self.subscription(name)
        path = f"{control.EVENTS}/consumers/{subscription.config.consumer}?dead_letters=1000"
        out = []
        for agent in self._agents(subscription):
            try:
                out.append({"agent": agent, **await self._ask(agent, "GET", path,
                                                               limit=LISTING)})  # fmt: skip
            except AGENT_ERRORS as exc:
                out.append({"agent": agent, "error": str(exc)})
        return out

    async def replay(self, name: str, start: int, agents: list[str]) -> list[dict[str, Any]]:
        """Deliver again from sequence `start` on `agents` (empty: every connected agent
        the subscription covers); each agent's new position, or why not. A subscription a
        410 disabled is enabled again on every agent."""
        subscription = self.subscription(name)
        covered = self._agents(subscription)
        chosen = agents or covered
        path = f"{control.EVENTS}/consumers/{subscription.config.consumer}"
        keys = {(name, agent) for agent in covered + chosen}
        self._replaying |= keys
        out = []
        try:
            for agent in sorted(set(covered) | set(chosen)):
                await self._halt(name, agent)
            subscription.enable()
            for agent in chosen:
                out.append(await self._rewind(agent, covered, path, start))
            for agent in set(covered) - set(chosen):  # its report must not disable it again
                with contextlib.suppress(*AGENT_ERRORS):
                    await self._ask(agent, "POST", f"{path}/ack",
                                    {"upto": 0, "report": {"disabled": None}})  # fmt: skip
        finally:
            self._replaying -= keys
        for agent in self._agents(subscription):
            self._start(name, agent)
        log.info("webhook %s: replay from sequence %d on %s", name, start,
                 ", ".join(chosen) or "no agent")  # fmt: skip
        return out

    async def _halt(self, name: str, agent: str) -> None:
        task = self._tasks.pop((name, agent), None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _rewind(
        self, agent: str, covered: list[str], path: str, start: int
    ) -> dict[str, Any]:
        if agent not in covered:
            return {"agent": agent, "error": "not a connected agent this webhook covers"}
        try:
            answer = await self._ask(agent, "POST", f"{path}/rewind", {"to": max(0, start - 1)})
        except AGENT_ERRORS as exc:
            return {"agent": agent, "error": str(exc)}
        return {"agent": agent, "position": answer.get("position")}

    async def _ask(
        self,
        agent: str,
        method: str,
        path: str,
        message: dict[str, Any] | None = None,
        limit: int = control.MAX_MESSAGE,
    ) -> dict[str, Any]:
        link = next(iter(self.registry.agent_links(agent)), None)
        if link is None:
            raise LinkClosed(f"agent {agent} is not connected")
        status, body = await link.exchange(method, path, message, limit)
        answer = orjson.loads(body) if body else {}
        if status != 200:
            detail = answer.get("detail") if isinstance(answer, dict) else answer
            raise Refused(f"the agent answered {status}: {detail}")
        return answer if isinstance(answer, dict) else {}


def _shown(url: str) -> str:
    """A subscription's URL as listed: without its query, which may carry a token."""
    return url.split("?", 1)[0] + ("?..." if "?" in url else "")


def _oldest(delivery: AgentDelivery | None) -> str | None:
    oldest = delivery.plan.oldest() if delivery is not None and delivery.plan else None
    return str(oldest.record.get("time")) if oldest is not None else None


class _Backlog(Collector):
    """Per subscription and agent: events undelivered, and the oldest one's age."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def collect(self) -> Any:
        undelivered = GaugeMetricFamily(
            "bridgehead_relay_webhook_undelivered",
            "Events read from an agent and not yet delivered.", labels=["webhook", "agent"],
        )  # fmt: skip
        oldest = GaugeMetricFamily(
            "bridgehead_relay_webhook_oldest_undelivered_seconds",
            "Age of the oldest event not yet delivered.", labels=["webhook", "agent"],
        )  # fmt: skip
        now = self.webhooks.clock()
        for (name, agent), delivery in self.webhooks._deliveries.items():
            plan = delivery.plan
            undelivered.add_metric([name, agent], plan.undone if plan else 0)
            first = _oldest(delivery)
            age = (now - datetime.fromisoformat(first)).total_seconds() if first else 0.0
            oldest.add_metric([name, agent], max(0.0, age))
        yield undelivered
        yield oldest
