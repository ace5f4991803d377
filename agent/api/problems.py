"""The one place errors become responses: RFC 9457 `application/problem+json`.

Known errors map to their status; source errors show only their public detail (never SQL,
driver text or credentials, which go to the log); anything else is a logged 500.
"""

from __future__ import annotations

import logging

from bridgehead.adapters.errors import SourceError, SourceUnavailable
from bridgehead.agent.api.message import ApiResponse
from bridgehead.common.errors import ApiError
from bridgehead.common.problem import PROBLEM_JSON, problem_body

log = logging.getLogger("bridgehead.errors")


def problem(status: int, title: str, detail: str, request_id: str, slug: str) -> ApiResponse:
    body = problem_body(status, title, detail, request_id, slug)
    return ApiResponse(status, {"Content-Type": PROBLEM_JSON}, body)


def from_exception(exc: BaseException, request_id: str) -> ApiResponse:
    if isinstance(exc, ApiError):
        response = problem(exc.status, exc.title, exc.detail, request_id, exc.slug)
        response.headers.update(exc.headers)
        return response
    if isinstance(exc, SourceError):
        log.warning(
            "source %s: %s: %s",
            exc.source,
            type(exc).__name__,
            exc.internal,
            extra={"request_id": request_id},
        )
        slug = type(exc).__name__.lower()
        response = problem(exc.status, exc.title, exc.public_detail, request_id, slug)
        if isinstance(exc, SourceUnavailable):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    return problem(
        500,
        "Internal error",
        "The agent failed to handle the request; see its log.",
        request_id,
        "internal",
    )
