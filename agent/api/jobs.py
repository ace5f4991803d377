"""`/v1/jobs`: the jobs a caller may see, their reconciliation reports, and runs started now.

A caller sees and starts only the jobs its scopes name (`jobs:NAME`). The job service itself
(`agent.jobs.runner`) sits above the API; the pipeline knows it only as a `JobsDesk`.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from bridgehead.agent.api.auth import Principal
from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.errors import MethodNotAllowed, NotFound
from bridgehead.common.errors import BadRequest
from bridgehead.common.problem import JSON

Report = dict[str, Any]
MAX_REPORTS = 100


class JobsDesk(Protocol):
    jobs: dict[str, Any]

    def describe(self, name: str) -> dict[str, Any]: ...

    async def last(self, name: str) -> Report | None: ...

    async def reports(self, name: str, limit: int = MAX_REPORTS) -> list[Report]: ...

    async def report(self, name: str, run: int) -> Report | None: ...

    async def run_now(self, name: str, *, dry_run: bool = False) -> Report: ...


async def handle(
    desk: JobsDesk | None, request: ApiRequest, principal: Principal, path: list[str]
) -> ApiResponse:
    """`path`: the segments after /v1/jobs; `desk` None: this agent has no jobs."""
    if not path:
        _only(request, "GET")
        visible = [n for n in (desk.jobs if desk else {}) if f"jobs:{n}" in principal.scopes]
        items = [await _summary(desk, n) for n in visible] if desk else []
        return _json(200, {"items": items})
    name = path[0]
    if desk is None or name not in desk.jobs:
        raise NotFound(f"no job named {name!r}")
    principal.require(f"jobs:{name}")
    if len(path) == 1:
        _only(request, "GET")
        return _json(200, await _summary(desk, name))
    if path[1] != "runs" or len(path) > 3:
        raise NotFound(f"no such endpoint: {request.path}")
    if len(path) == 3:
        _only(request, "GET")
        run = _run_number(path[2])
        report = await desk.report(name, run)
        if report is None:
            raise NotFound(f"job {name!r} has no report of run {run} (reports are kept for "
                           "the last keep_runs runs)")  # fmt: skip
        return _json(200, report)
    if request.method == "POST":
        return await _start(desk, request, name)
    _only(request, "GET", "POST")
    return _json(200, {"items": await desk.reports(name)})


async def _summary(desk: JobsDesk, name: str) -> dict[str, Any]:
    return {**desk.describe(name), "last_run": await desk.last(name)}


async def _start(desk: JobsDesk, request: ApiRequest, name: str) -> ApiResponse:
    """202 with the run's first report; 409 (RunUnderWay) while one is under way."""
    report = await desk.run_now(name, dry_run=_dry_run(request.body))
    location = f"/v1/jobs/{name}/runs/{report['id']}"
    return _json(202, {**report, "url": location}, {"Location": location})


def _dry_run(body: bytes) -> bool:
    if not body.strip():
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest('the body is not JSON; send {"dry_run": true} or nothing') from None
    if not isinstance(data, dict) or set(data) - {"dry_run"}:
        raise BadRequest('send {"dry_run": true}, {"dry_run": false} or no body')
    value = data.get("dry_run", False)
    if not isinstance(value, bool):
        raise BadRequest("dry_run is true or false")
    return value


def _run_number(text: str) -> int:
    if not text.isdigit():
        raise NotFound(f"{text!r} is not a run number")
    return int(text)


def _only(request: ApiRequest, *methods: str) -> None:
    method = "GET" if request.method == "HEAD" else request.method
    if method not in methods:
        raise MethodNotAllowed(
            f"{request.method} is not allowed here; allowed: {', '.join(methods)}",
            headers={"Allow": ", ".join(methods)},
        )


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(status, {"Content-Type": JSON, **(headers or {})}, orjson.dumps(data))
