"""Change events as the admin listener shows them: each named consumer's place in the
agent's event log (`EventsState`, read by `events_state`), the warning for a consumer too far
behind (`/readyz` and the page), the `events` part of `/status.json`, and the Prometheus
families of the log and its consumers.

Rules: `events_state` is the one function here that reads the log (blocking: the monitor runs
it on a thread), and only by cheap lookups by key, never a scan of the events, so a scrape
costs the same on a backlog of any length; a consumer's report is that consumer's own JSON,
so of it only the fields shown are taken, each only when it has the expected type. The rest
is pure: the time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from bridgehead.agent.events.log import Consumer, EventLog

WEBHOOK_PREFIX = "webhook."
"""The relay's webhook deliverer reads the log as the consumer `webhook.SUBSCRIPTION`."""


@dataclass(frozen=True)
class ConsumerState:
    name: str
    position: int
    backlog: int
    """Events past its position still in the log."""
    oldest_unprocessed: datetime | None
    """The time of the first event past its position; None when it is at the end."""
    dead_letters: int
    delivered: int | None = None
    failures: int | None = None
    last_error: str | None = None
    disabled: bool | None = None
    """From its report: None when it leaves none (or leaves another shape)."""


@dataclass(frozen=True)
class EventsState:
    last_seq: int
    size: int
    """Bytes the event log's database holds."""
    backlog_warning: int
    """`events.backlog_warning`: a consumer further behind than this is warned of."""
    consumers: tuple[ConsumerState, ...]


def events_state(log: EventLog, backlog_warning: int) -> EventsState:
    """The log's figures now (blocking: run on a thread)."""
    last, first = log.last_seq(), log.first_seq()
    consumers = tuple(_consumer_state(log, kept, last, first) for kept in log.consumers())
    return EventsState(last, log.size(), backlog_warning, consumers)


def _consumer_state(log: EventLog, kept: Consumer, last: int, first: int) -> ConsumerState:
    report, oldest = kept.report, log.time_after(kept.position)
    error = report.get("last_error")
    return ConsumerState(
        kept.name, kept.position, max(0, last - max(kept.position, first - 1)),
        _time(oldest), kept.dead_letters,
        delivered=_count(report.get("delivered")), failures=_count(report.get("failures")),
        last_error=error if isinstance(error, str) and error else None,
        disabled=report["disabled"] if isinstance(report.get("disabled"), bool) else None,
    )  # fmt: skip


def _time(text: str | None) -> datetime | None:
    """An event's `time` (naive meaning UTC, as capture reads it); None if it is not a time."""
    try:
        found = datetime.fromisoformat(text) if text is not None else None
    except ValueError:
        return None
    return found if found is None or found.tzinfo else found.replace(tzinfo=UTC)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def backlog_warnings(state: EventsState | None) -> Iterator[tuple[str, str]]:
    """(name, reason) for each consumer more than `backlog_warning` events behind."""
    if state is None:
        return
    for c in state.consumers:
        if c.backlog > state.backlog_warning:
            behind = f"{c.backlog} events behind (warning at {state.backlog_warning})"
            yield f"events:{c.name}", f"consumer {c.name} is {behind}: {_advice(c)}"


def _advice(consumer: ConsumerState) -> str:
    if not consumer.name.startswith(WEBHOOK_PREFIX):
        return (
            "check that it is running and acks what it has processed "
            f"(POST /v1/events/consumers/{consumer.name}/ack)"
        )
    if consumer.disabled:
        subscription = consumer.name.removeprefix(WEBHOOK_PREFIX)
        return (
            "its webhook subscription is disabled (its endpoint answered 410); enable it with "
            f"`bridgehead-relay webhooks replay {subscription} --from {consumer.position}`"
        )
    return "check its deliveries with `bridgehead-relay webhooks list`"


def _seconds_behind(consumer: ConsumerState, now: datetime) -> float:
    oldest = consumer.oldest_unprocessed
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


def consumer_dict(consumer: ConsumerState, state: EventsState, now: datetime) -> dict[str, Any]:
    oldest = consumer.oldest_unprocessed
    return {
        "name": consumer.name, "position": consumer.position, "last_seq": state.last_seq,
        "backlog": consumer.backlog, "behind": consumer.backlog > state.backlog_warning,
        "oldest_unprocessed": None if oldest is None else oldest.isoformat(),
        "oldest_unprocessed_seconds": round(_seconds_behind(consumer, now), 3),
        "delivered": consumer.delivered, "failures": consumer.failures,
        "last_error": consumer.last_error, "disabled": consumer.disabled,
        "dead_letters": consumer.dead_letters,
    }  # fmt: skip


def events_dict(state: EventsState | None, now: datetime) -> dict[str, Any] | None:
    """The `events` part of `/status.json`: None when the agent captures no events."""
    if state is None:
        return None
    return {
        "last_seq": state.last_seq,
        "log_bytes": state.size,
        "backlog_warning": state.backlog_warning,
        "consumers": [consumer_dict(c, state, now) for c in state.consumers],
    }


def event_families(state: EventsState | None, now: datetime) -> Iterator[Metric]:
    """The event log's and its consumers' figures, at scrape time."""
    if state is None:
        return
    yield GaugeMetricFamily(
        "bridgehead_events_last_sequence", "Sequence of the last event in the event log.",
        value=state.last_seq,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "bridgehead_events_log_bytes", "Bytes the event log's database holds.", value=state.size
    )
    names = ("backlog", "oldest_unprocessed_seconds", "dead_letters", "failures")
    helps = (
        "Events past the consumer's committed position.",
        "Age of the oldest event the consumer has not processed (0: none).",
        "Events the consumer gave up on, kept on the agent.",
        "Failed deliveries, as the consumer's last report gives them.",
    )
    gauges = [
        GaugeMetricFamily(f"bridgehead_events_consumer_{name}", text, labels=["consumer"])
        for name, text in zip(names, helps, strict=True)
    ]
    backlog, oldest, dead, failures = gauges
    for c in state.consumers:
        backlog.add_metric([c.name], c.backlog)
        oldest.add_metric([c.name], _seconds_behind(c, now))
        dead.add_metric([c.name], c.dead_letters)
        if c.failures is not None:
            failures.add_metric([c.name], c.failures)
    yield from gauges
