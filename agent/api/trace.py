"""What the audit log and the request log say of one request: a `Trace` the pipeline fills in
as it learns who called and what for, and `Done`, which writes the record once the answer is
finished (a streamed answer's when its stream ends, 499 when the caller left before).

Rules: one audit record per request; a log that fails after the request was let in leaves
the answer standing (logged), never turned into an error mid-answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.audit import AuditError, AuditRecord

log = logging.getLogger("bridgehead.requests")
CLIENT_CLOSED = 499
"""Audited status of a stream the caller abandoned before its end (nginx's convention)."""


@dataclass
class Trace:
    """What the audit log says of a request, filled in as the pipeline learns it."""

    principal: str = "anonymous"
    target: str = "-"
    operation: str = "-"


class Auditor(Protocol):
    async def record(self, rec: AuditRecord) -> None: ...

    @property
    def failure(self) -> str | None:
        """Why the log stopped writing, or None while it writes."""


@dataclass(frozen=True)
class Done:
    """Writes the audit record and the log line once a request is finished."""

    audit: Auditor
    clock: Callable[[], float]
    request: ApiRequest
    request_id: str
    trace: Trace
    started: float
    at: datetime

    async def __call__(self, response: ApiResponse, status: int) -> None:
        elapsed = (self.clock() - self.started) * 1000
        try:
            await self._record(response, status, elapsed)
        except AuditError as exc:  # the log failed since the request was let in: answer it
            log.error(
                "audit log: %s; this request's answer stands without its audit record",
                exc,
                extra={"request_id": self.request_id},
            )
        log.debug(  # every access is in the audit log; this is for troubleshooting
            "%s %s %d %.1fms via %s",
            self.request.method,
            self.request.path,
            status,
            elapsed,
            self.request.via,
            extra={"request_id": self.request_id},
        )

    async def _record(self, response: ApiResponse, status: int, elapsed: float) -> None:
        await self.audit.record(
            AuditRecord(
                time=self.at,
                request_id=self.request_id,
                principal=self.trace.principal,
                target=self.trace.target,
                operation=self.trace.operation,
                rows=response.rows,
                status=status,
                duration_ms=round(elapsed, 3),
                via=self.request.via,
            )
        )
