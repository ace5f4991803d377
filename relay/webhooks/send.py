"""One webhook delivery: the event's `data` POSTed to the subscriber, signed per Standard
Webhooks, its attributes in CloudEvents' HTTP binary mode.

Rules:
- Headers: `webhook-id` (the event's id, stable across retries, so a receiver can drop a
  repeat), `webhook-timestamp` and `webhook-signature` (`v1,` HMAC-SHA256 of
  `id.timestamp.body` under the secret, by the `standardwebhooks` library); `ce-specversion`,
  `ce-id`, `ce-source`, `ce-type`, `ce-subject`, `ce-time` and the `ce-sequence` and
  `ce-partitionkey` extensions, percent-encoded as the binding asks where a value is not
  printable ASCII; the body is `data` as JSON.
- Any 2xx is delivered. 410 Gone disables the subscription. 429 is retried after its
  `Retry-After` (seconds or an HTTP date). Anything else, a timeout or a refused connection
  is retried with backoff. A receiver's answer body is read only up to a few KiB, for the log.
- Redirects are not followed: the URL is the configured one, and the signed body goes
  nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from bridgehead.relay.webhooks.config import WebhookConfig

SAFE = "!#$&'()*+,/:;<=>?@[]^_`{|}~-."
"""Printable ASCII left as it is in a ce- header value (the binding encodes space, " and %)."""
CE_ATTRIBUTES = ("id", "source", "type", "subject", "time", "sequence", "partitionkey")
EXCERPT = 200


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    why: str = ""
    """For a failure: one line, the status and the receiver's excerpt, or the error."""
    retry_after: float | None = None
    gone: bool = False
    """410: the subscriber wants no more deliveries."""


def signed(hook: Webhook, record: dict[str, Any], now: datetime) -> tuple[dict[str, str], bytes]:
    """The headers and body of the delivery of `record` (a CloudEvents record)."""
    body = orjson.dumps(record.get("data"))
    headers = {
        "content-type": str(record.get("datacontenttype", "application/json")),
        "webhook-id": str(record["id"]),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": hook.sign(str(record["id"]), now, body.decode()),
        "ce-specversion": str(record.get("specversion", "1.0")),
    }
    for name in CE_ATTRIBUTES:
        if record.get(name) is not None:
            headers[f"ce-{name}"] = quote(str(record[name]), safe=SAFE)
    return headers, body


async def deliver(
    http: aiohttp.ClientSession,
    config: WebhookConfig,
    hook: Webhook,
    record: dict[str, Any],
    now: datetime,
) -> Outcome:
    headers, body = signed(hook, record, now)
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    try:
        async with http.post(config.url, data=body, headers=headers, timeout=timeout,
                             allow_redirects=False) as answer:  # fmt: skip
            if 200 <= answer.status < 300:
                return Outcome(True)
            excerpt = (await answer.content.read(EXCERPT)).decode(errors="replace").strip()
            why = f"HTTP {answer.status}" + (f": {excerpt}" if excerpt else "")
            if answer.status == 410:
                return Outcome(False, why, gone=True)
            wait = retry_after(answer.headers.get("Retry-After"), now)
            return Outcome(False, why, retry_after=wait if answer.status == 429 else None)
    except TimeoutError:
        return Outcome(False, f"no answer within {config.timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError, RuntimeError) as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}")


def retry_after(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` in seconds from `now` (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError):  # not a date, or one without a zone
        return None
