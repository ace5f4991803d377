"""Feeds the admin page and the metrics from the request pipeline: every audit record a
request leaves is also observed here (the rolling window, the Prometheus figures, the last
errors), by wrapping the audit log the pipeline writes to.

Rules: observing is a few dictionary updates on the loop, never I/O; targets the config does
not name become `(other)`, so a caller cannot grow the label sets; an error is an answer with
status 500 or above, kept with its request id and the reason the agent logged for it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridgehead.agent.admin.metrics import AgentMetrics
from bridgehead.agent.admin.window import RequestWindow
from bridgehead.agent.api.trace import Auditor
from bridgehead.agent.audit import AuditRecord
from bridgehead.agent.config.model import AgentConfig

log = logging.getLogger("bridgehead.admin")
LAST_ERRORS = 50
OTHER = "(other)"
_REASONS_KEPT = 200


@dataclass(frozen=True)
class ErrorEntry:
    time: datetime
    request_id: str
    target: str
    operation: str
    status: int
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(timespec="milliseconds"),
            "request_id": self.request_id,
            "target": self.target,
            "operation": self.operation,
            "status": self.status,
            "reason": self.reason,
        }


def known_targets(config: AgentConfig) -> frozenset[str]:
    """The targets audit records may name that are the config's own."""
    return frozenset(
        [*config.resources, "openapi.json", "-"]
        + [f"queries:{name}" for name in config.queries]
        + [f"procedures:{name}" for name in config.procedures]
    )


class ReasonCatcher(logging.Handler):
    """Keeps the last warnings and errors logged with a request id, by that id."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: OrderedDict[str, str] = OrderedDict()

    def emit(self, record: logging.LogRecord) -> None:
        request_id = getattr(record, "request_id", None)
        if isinstance(request_id, str):
            self.reasons[request_id] = record.getMessage()
            while len(self.reasons) > _REASONS_KEPT:
                self.reasons.popitem(last=False)

    def take(self, request_id: str) -> str | None:
        return self.reasons.pop(request_id, None)


class RequestObserver:
    def __init__(
        self,
        config: AgentConfig,
        metrics: AgentMetrics,
        window: RequestWindow,
        reasons: ReasonCatcher | None = None,
    ) -> None:
        self.targets = known_targets(config)
        self.metrics, self.window = metrics, window
        self.reasons = reasons or ReasonCatcher()
        self.errors: deque[ErrorEntry] = deque(maxlen=LAST_ERRORS)

    def __call__(self, rec: AuditRecord) -> None:
        target = rec.target if rec.target in self.targets else OTHER
        seconds = rec.duration_ms / 1000
        self.window.add(target, rec.operation, rec.status, seconds)
        self.metrics.observe(target, rec.operation, rec.status, seconds, rec.rows)
        reason = self.reasons.take(rec.request_id)
        if rec.status >= 500:
            entry = ErrorEntry(rec.time, rec.request_id, target, rec.operation, rec.status, reason)
            self.errors.append(entry)


class ObservedAudit:
    """The audit log as the pipeline sees it: each record observed, then written."""

    def __init__(self, audit: Auditor, observe: Callable[[AuditRecord], None]) -> None:
        self.audit, self.observe = audit, observe

    async def record(self, rec: AuditRecord) -> None:
        try:
            self.observe(rec)
        except Exception:  # a figure lost must never cost the audit record
            log.exception("admin figures: cannot observe request %s", rec.request_id)
        await self.audit.record(rec)

    @property
    def failure(self) -> str | None:
        return self.audit.failure
