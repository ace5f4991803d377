"""Exactly-once writes across retries: the `Idempotency-Key` protocol around a write.

A write with a key claims it in the `IdempotencyStore`, records its response and a proof
just before the database commit, and marks it done after. A repeat with the same key and
the same request gets the first response (`Idempotent-Replayed: true`) and writes nothing;
the same key with a different request is 422. After a crash, a `prepared` key is settled
by checking its proof against the database. Outcomes below 500 of writes that reached the
database are final and replayed too; a request refused before (a bad body, a missing
If-Match) frees its key, so refusals never fill the store. A principal past its live-key
cap gets 429 with `Retry-After` (when its oldest key expires).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bridgehead.adapters.errors import SourceError
from bridgehead.agent.api import writes
from bridgehead.agent.api.idempotency import Entry, IdempotencyStore, KeyLimitReached
from bridgehead.agent.api.message import ApiRequest, ApiResponse
from bridgehead.agent.api.problems import from_exception
from bridgehead.agent.catalog import Resource
from bridgehead.agent.errors import Conflict, TooManyRequests, Unprocessable
from bridgehead.common import failpoints
from bridgehead.common.errors import ApiError, BadRequest

Write = Callable[[writes.BeforeCommit], Awaitable[ApiResponse]]
MAX_KEY = 255


def fingerprint(request: ApiRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, repr(sorted(request.query))):
        digest.update(part.encode() + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _replayed(response: ApiResponse) -> ApiResponse:
    return replace(response, headers={**response.headers, "Idempotent-Replayed": "true"})


class Replayer:
    def __init__(self, store: IdempotencyStore) -> None:
        self._store = store
        self._running: set[tuple[str, str]] = set()

    async def run(
        self, principal: str, request: ApiRequest, resource: Resource, write: Write
    ) -> ApiResponse:
        key = request.headers.get("idempotency-key")
        if key is None:
            return await write(writes.no_hook)
        if not 0 < len(key) <= MAX_KEY or not (key.isascii() and key.isprintable()):
            raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters")
        slot = (principal, key)
        if slot in self._running:
            raise Conflict("a request with this Idempotency-Key is still running; retry later")
        self._running.add(slot)
        try:
            earlier = await self._settle(slot, fingerprint(request), resource)
            if earlier is not None:
                return _replayed(earlier)
            return await self._execute(slot, request, write)
        finally:
            self._running.discard(slot)

    async def _settle(
        self, slot: tuple[str, str], request_hash: str, resource: Resource
    ) -> ApiResponse | None:
        """The stored response if the key's write is done; None once the key is claimed."""
        entry = await self._claim(slot, request_hash)
        if entry is None:
            return None
        if entry.request_hash != request_hash:
            raise Unprocessable(
                "this Idempotency-Key was already used for a different request; "
                "use a new key for a new request"
            )
        if await self._happened(slot, entry, resource):
            assert entry.response is not None
            return entry.response
        await self._store.release(*slot)
        if await self._store.claim(*slot, request_hash) is not None:
            raise Conflict("this Idempotency-Key is in use; retry later")
        return None

    async def _claim(self, slot: tuple[str, str], request_hash: str) -> Entry | None:
        try:
            return await self._store.claim(*slot, request_hash)
        except KeyLimitReached as full:
            seconds = str(math.ceil(full.retry_after))
            raise TooManyRequests(
                f"{slot[0]} holds {full.limit} live Idempotency-Keys, the most allowed "
                f"(idempotency.max_keys_per_principal); retry after {seconds} s, or send "
                "this write without a key",
                headers={"Retry-After": seconds},
            ) from None

    async def _happened(self, slot: tuple[str, str], entry: Entry, resource: Resource) -> bool:
        if entry.state == "done":
            return True
        if entry.state != "prepared" or entry.proof is None or entry.response is None:
            return False  # claimed before a crash: the commit comes after `prepared`
        if await writes.committed(resource, entry.proof):
            await self._store.finish(*slot, entry.response)
            return True
        return False

    async def _execute(
        self, slot: tuple[str, str], request: ApiRequest, write: Write
    ) -> ApiResponse:
        hooks = _Recorder(self._store, slot)
        try:
            response = await write(hooks)
        except (ApiError, SourceError) as exc:
            if not hooks.prepared:
                await self._final_failure(slot, exc, hooks.reached_database)
            raise
        except BaseException:
            if not hooks.prepared:
                await self._store.release(*slot)
            raise
        failpoints.reach("after-commit")
        await self._store.finish(*slot, response)
        return response

    async def _final_failure(
        self, slot: tuple[str, str], exc: ApiError | SourceError, reached: bool
    ) -> None:
        """The database's refusal (4xx) is the request's outcome and is replayed; a refusal
        before the database (validation) and a 5xx free the key."""
        if exc.status < 500 and reached:
            await self._store.finish(*slot, from_exception(exc, "replayed"))
        else:
            await self._store.release(*slot)


class _Recorder:
    """The write's hooks: notes that it reached the database, and stores its response
    and proof just before the commit."""

    def __init__(self, store: IdempotencyStore, slot: tuple[str, str]) -> None:
        self._store, self._slot = store, slot
        self.reached_database = False
        self.prepared = False

    def reached(self) -> None:
        self.reached_database = True

    async def before_commit(self, response: ApiResponse, proof: writes.Proof) -> None:
        await self._store.prepare(*self._slot, response, proof)
        self.prepared = True
        failpoints.reach("before-commit")
