"""The agent's request-level errors, each with its HTTP status (SPEC §3).

Handlers raise these; `agent.api.problems` is the one place that turns them (and the
adapters' `SourceError`s) into `application/problem+json` responses.
"""

from __future__ import annotations

from bridgehead.common.errors import ApiError


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not found"
    slug = "not-found"


class MethodNotAllowed(ApiError):
    status = 405
    title = "Method not allowed"
    slug = "method-not-allowed"


class NotAcceptable(ApiError):
    status = 406
    title = "Not acceptable"
    slug = "not-acceptable"


class Conflict(ApiError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class RequestTimeout(ApiError):
    status = 408
    title = "Request timeout"
    slug = "request-timeout"


class PreconditionFailed(ApiError):
    status = 412
    title = "Precondition failed"
    slug = "precondition-failed"


class Unprocessable(ApiError):
    status = 422
    title = "Unprocessable request"
    slug = "unprocessable"


class PreconditionRequired(ApiError):
    status = 428
    title = "Precondition required"
    slug = "precondition-required"


class TooManyRequests(ApiError):
    status = 429
    title = "Too many requests"
    slug = "too-many-requests"


class PayloadTooLarge(ApiError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class AuditUnavailable(ApiError):
    """The audit log cannot write: data requests are refused before they reach a database."""

    status = 503
    title = "Audit log unavailable"
    slug = "audit-unavailable"
