"""Errors an adapter raises, each already classified and carrying its HTTP status.

Driver exceptions are translated where the driver is called (see the dialects' `classify`);
nothing above the adapter ever sees a driver exception or a driver message, which may hold
SQL text or credentials. `public_detail` is the only text that reaches a caller.
"""

from __future__ import annotations


class SourceError(Exception):
    """A database operation failed; `status` is the HTTP status a caller gets."""

    status = 500
    title = "Database error"
    public_detail = "The database reported an error; see the agent log for details."

    def __init__(self, source: str, internal: str = "", *, detail: str | None = None) -> None:
        super().__init__(internal or self.public_detail)
        self.source = source
        self.internal = internal
        if detail is not None:
            self.public_detail = detail


class SourceUnavailable(SourceError):
    """The database cannot be reached (refused, lost, login failed)."""

    status = 503
    title = "Source unavailable"
    public_detail = "The database is not reachable right now; retry shortly."
    retry_after = 5


class QueryTimedOut(SourceError):
    """The query ran past the source's `query_timeout` and was cancelled."""

    status = 504
    title = "Query timeout"
    public_detail = "The query took longer than the source's query_timeout and was cancelled."


class ConstraintViolated(SourceError):
    """A unique, foreign-key, not-null or check constraint refused a write."""

    status = 409
    title = "Constraint violation"
    public_detail = "The database refused the change because it violates a constraint."


class ValueRejected(SourceError):
    """The database refused a bound value (out of range, bad format for the column)."""

    status = 400
    title = "Value rejected"
    public_detail = "The database rejected a value as invalid for its column."


class TextNotStorable(ValueRejected):
    """A text value holds characters the column's character set cannot store (an emoji in a
    MySQL utf8mb3 column); the detail names the column once it is known."""

    public_detail = (
        "The database cannot store or compare a text value here: it holds characters outside "
        "the column's character set (such as emoji in a utf8mb3 column); remove them."
    )


class WriteRewritten(SourceError):
    """The database rewrites writes to the table (a PostgreSQL rule redirecting inserts to
    another table), so the row it stored cannot be known or returned."""

    status = 422
    title = "Write not supported"
    public_detail = (
        "The database rewrites inserts into this table (a rule sends them to another table), "
        "so the stored row cannot be returned; insert into the table the rule writes to, or "
        "take insert out of the resource's operations."
    )


class DriverMissing(SourceError):
    """The driver library for a source is not installed."""

    status = 503
    title = "Driver missing"
