"""What the relay logs passes the shared redaction rules (`common.redact`, the one set of
them) before any handler sees it: its own lines and aiohttp's server, access and web loggers
are filtered here, whatever handlers the process has (the relay also runs in-process, in the
demo and the tests, without `common.logs.configure`).

Rules:
- A malformed request is logged as one line naming its source and the parser's verdict
  (the exception's class), never its bytes: aiohttp's own line prints the raw request,
  `Authorization` included.
- Every other line, its exception text included, has credentials cut out: the values of
  Authorization, Proxy-Authorization, Cookie and API-key headers, and bearer tokens.
"""

from __future__ import annotations

import logging

from bridgehead.common.redact import malformed_request, scrub

LOGGERS = (
    "bridgehead.relay", "aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal",
    "asyncio",
)  # fmt: skip


class Redactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        error = malformed_request(exc) if exc is not None else None
        if error is not None:
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
        cleaned = scrub(text)
        if cleaned != text:
            _replace(record, cleaned)
        return True


def _replace(record: logging.LogRecord, message: str) -> None:
    record.msg, record.args = message, ()
    record.exc_info, record.exc_text = None, None


_REDACTOR = Redactor()
_USERS: list[object] = []
"""The relays running in this process: the filter stays while one does."""


def install(user: object) -> None:
    """Put the redactor on every logger the relay writes through, while `user` runs."""
    _USERS.append(user)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def uninstall(user: object) -> None:
    """`user` stopped; once no relay in this process runs, the loggers are left as found (a
    process that also runs an agent, like the demo, logs through its own set-up)."""
    if user in _USERS:
        _USERS.remove(user)
    if not _USERS:
        for name in LOGGERS:
            logging.getLogger(name).removeFilter(_REDACTOR)
