"""The agent's request-level errors, each with its HTTP status, and `ANSWERS`: the one table
of what each error status means to a caller, which the OpenAPI document publishes.

Handlers raise these; `agent.api.problems` is the one place that turns them (and the
adapters' `SourceError`s) into `application/problem+json` responses.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridgehead.adapters import errors as source
from bridgehead.common.errors import ApiError, BadRequest, Unauthorized


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


class RunUnderWay(Conflict):
    """A job's run was asked for while one is under way (here or in another process)."""


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


class Stopping(ApiError):
    """The agent is stopping: what it serves from its own state (the event log) is closed."""

    status = 503
    title = "Agent stopping"
    slug = "agent-stopping"


@dataclass(frozen=True)
class ErrorAnswer:
    """What a caller is told about one error status: its name in the OpenAPI document, what
    it means, which errors answer with it, and the headers it carries."""

    name: str
    meaning: str
    errors: tuple[type[ApiError] | type[source.SourceError], ...]
    headers: tuple[str, ...] = ()


ANSWERS: dict[int, ErrorAnswer] = {
    400: ErrorAnswer("BadRequest", "A parameter, filter, key or body is not valid.",
                     (BadRequest, source.ValueRejected)),
    401: ErrorAnswer("Unauthorized", "No valid API key or token in `Authorization: Bearer ...`.",
                     (Unauthorized,), ("WWW-Authenticate",)),
    403: ErrorAnswer("Forbidden", "The credential lacks the scope this operation needs.",
                     (Forbidden,)),
    404: ErrorAnswer("NotFound", "No such resource, row, query or procedure.", (NotFound,)),
    405: ErrorAnswer("MethodNotAllowed", "The path does not take this method; see Allow.",
                     (MethodNotAllowed,)),
    406: ErrorAnswer("NotAcceptable", "No representation in a media type the Accept header allows.",
                     (NotAcceptable,)),
    408: ErrorAnswer("RequestTimeout", "The request body did not arrive in time.",
                     (RequestTimeout,)),
    409: ErrorAnswer("Conflict",
                     "A database constraint refused the write, the Idempotency-Key is busy, or "
                     "a run of the job is under way.",
                     (Conflict, RunUnderWay, source.ConstraintViolated)),
    412: ErrorAnswer("PreconditionFailed",
                     "The row changed since it was read: If-Match does not match.",
                     (PreconditionFailed,)),
    413: ErrorAnswer("PayloadTooLarge", "The request body is larger than the agent accepts.",
                     (PayloadTooLarge,)),
    422: ErrorAnswer("Unprocessable",
                     "This Idempotency-Key was already used for a different request, or the "
                     "database rewrites writes to the table.",
                     (Unprocessable, source.WriteRewritten)),
    428: ErrorAnswer("PreconditionRequired",
                     "If-Match is required: send the ETag from a GET of the row.",
                     (PreconditionRequired,)),
    429: ErrorAnswer("TooManyRequests", "The caller is over its request rate; see Retry-After.",
                     (TooManyRequests,), ("Retry-After",)),
    500: ErrorAnswer("InternalError", "The agent or the database failed; see the agent's log.",
                     (ApiError, source.SourceError)),
    503: ErrorAnswer("SourceUnavailable",
                     "The database cannot be reached, its driver is missing, the audit log "
                     "cannot write, or the agent is stopping; see Retry-After.",
                     (source.SourceUnavailable, source.DriverMissing, AuditUnavailable,
                      Stopping),
                     ("Retry-After",)),
    504: ErrorAnswer("QueryTimeout",
                     "The database did not answer within the source's query_timeout.",
                     (source.QueryTimedOut,)),
}  # fmt: skip
