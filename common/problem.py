"""RFC 9457 problem bodies and the media types both ends answer with.

Rules: a problem body has exactly the fields `type`, `title`, `status`, `detail` and
`request_id`, in that order (orjson, compact); `type` is PROBLEM_TYPE followed by the
problem's slug. The agent's and the relay's problem responses, and the agent's raw refusal
of a connection past its cap, are all built from `problem_body`. No I/O here.
"""

from __future__ import annotations

import orjson

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
NDJSON = "application/x-ndjson"
PROBLEM_TYPE = "https://bridgehead.dev/problems/"


def problem_body(status: int, title: str, detail: str, request_id: str, slug: str) -> bytes:
    """The problem+json document of one error."""
    body = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    return orjson.dumps(body)


def slug_of(title: str) -> str:
    """A title as a problem-type slug: `Agent not connected` → `agent-not-connected`."""
    return title.lower().replace(" ", "-")
