"""The request-level errors both ends raise, each with its HTTP status.

The agent's other errors (agent.errors) derive from `ApiError`; each end turns them into
`application/problem+json` responses in one place.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500
    title = "Internal error"
    slug = "internal"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400
    title = "Bad request"
    slug = "bad-request"


class Unauthorized(ApiError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"
