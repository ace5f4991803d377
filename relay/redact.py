"""The one redaction path for what the relay logs: its own lines and aiohttp's server, access
and web loggers pass through `Redactor` before any handler sees them.

Rules:
- A malformed request is logged as one line naming its source and the parser's verdict
  (the exception's class), never its bytes: aiohttp's own line prints the raw request,
  `Authorization` included.
- Every other line, its exception text included, has credentials cut out: the values of
  Authorization, Proxy-Authorization, Cookie and API-key headers, and bearer tokens.
"""

from __future__ import annotations

import logging
import re

from aiohttp.http_exceptions import HttpProcessingError

LOGGERS = (
    "bridgehead.relay", "aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal",
    "asyncio",
)  # fmt: skip
_SECRET_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key)(['\"]?\s*[:=,]\s*['\"]?)"
    r"[^\r\n'\"]*"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with credentials cut out."""
    text = _SECRET_HEADER.sub(rf"\1\2{REDACTED}", text)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


class Redactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            source = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            _replace(record, f"malformed request from {source} refused "
                             f"({type(error).__name__}, status {error.code}); its bytes are "
                             "not logged")  # fmt: skip
            return True
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        cleaned = redact(text)
        if cleaned != text:
            _replace(record, cleaned)
        return True


def _replace(record: logging.LogRecord, message: str) -> None:
    record.msg, record.args = message, ()
    record.exc_info, record.exc_text = None, None


_REDACTOR = Redactor()


def install() -> None:
    """Put the redactor on every logger the relay writes through (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
