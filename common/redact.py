"""The one redaction path for everything Bridgehead logs: a structlog processor that every
record passes before it is rendered, the agent's own and every library's (aiohttp's access,
server and web loggers included), on stderr in text or JSON.

Rules (pure functions, no I/O):
- A malformed HTTP request (aiohttp's HttpProcessingError) is logged as one line with the
  peer, the status and the error's class: never its message or traceback, which quote the raw
  request bytes (headers, `Authorization` included, and body).
- Exceptions are rendered to plain text here (never with locals), then scrubbed like the rest.
- Credentials are replaced by `[redacted]` wherever they appear: bearer and basic tokens,
  anything shaped like a JWT, the values of credential headers, connection-string passwords
  and the password in a URL.
- Database driver messages keep constraint, table and column names and lose the row values
  they quote (`Key (id)=(…) already exists`, `Duplicate entry '…' for key 'PRIMARY'`).
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

REDACTED = "[redacted]"
VALUE = "…"
_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

_CREDENTIALS: list[_Rule] = [
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"), REDACTED),
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization|cookie|set-cookie|x-api-key|api-key)"
            r"(\s*[:=]\s*)[^\r\n\\'\"]*"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\\'\",;]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)(pwd|password|passwd)(\s*=\s*)(\{(?:[^}]|\}\})*\}|[^;\s'\"]*)"),
     rf"\1\2{REDACTED}"),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), f"whsec_{REDACTED}"),  # webhook signing secrets
]  # fmt: skip

_VALUES: list[_Rule] = [
    # PostgreSQL: Key (id)=(1) already exists / is not present in table / is still referenced
    (re.compile(r"(Key \(([^()]*)\)=\().*?(\) (?:already exists|is not present|is still "
                r"referenced|conflicts with))", re.S), rf"\1{VALUE}\3"),
    (re.compile(r"(Failing row contains \().*(\))"), rf"\1{VALUE}\2"),
    (re.compile(r"(invalid input (?:syntax|value) for [^:\n]*: )\"[^\n]*?\"(?=$|\n|;| \()"),
     rf'\1"{VALUE}"'),
    # MariaDB/MySQL: Duplicate entry '1' for key 'PRIMARY'; Incorrect integer value: 'x' for
    (re.compile(r"(Duplicate entry ')[^\n]*(' for key)"), rf"\1{VALUE}\2"),
    (re.compile(r"((?:value|VALUE): ')[^\n]*?(' for )"), rf"\1{VALUE}\2"),
    (re.compile(r"(Truncated incorrect \w+ value: ')[^\n]*(')"), rf"\1{VALUE}\2"),
]  # fmt: skip


def strip_values(message: str) -> str:
    """A driver message without the row values it quotes; names and SQLSTATEs stay."""
    for pattern, replacement in _VALUES:
        message = pattern.sub(replacement, message)
    return message


def scrub(text: str) -> str:
    """`text` without credentials or row values."""
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return strip_values(text)


def malformed_request(exc: BaseException) -> HttpProcessingError | None:
    """The HTTP parsing error behind a logged exception, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, HttpProcessingError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The structlog processor: summarise malformed requests, render and scrub the rest."""
    exc_info = event_dict.pop("exc_info", None)
    exc = _exception(exc_info)
    if exc is not None:
        http_error = malformed_request(exc)
        if http_error is not None:
            event_dict["event"] = _summary(event_dict, http_error)
        else:
            lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
            event_dict["exception"] = "".join(lines).rstrip("\n")
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = scrub(value)
    return event_dict


def _exception(exc_info: Any) -> BaseException | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    return None


def _summary(event_dict: MutableMapping[str, Any], error: HttpProcessingError) -> str:
    event = str(event_dict.get("event", "")).splitlines()[0] if event_dict.get("event") else ""
    summary = f"malformed request refused with {error.code} ({type(error).__name__})"
    return f"{event}: {summary}" if event else summary
