"""Logging set-up: structured lines, one format for the agent's and libraries' logs.

Lines are JSON when their destination is not a terminal (a service, a pipe, a file) and
readable text when it is; `logging:` in the config sets the level and the destination:
stderr, or a file rotated by size, written by a thread of its own so that no event loop
waits on the disk (lines are rendered, redacted and given their request id in the thread
that logs them, and queued). Each line logged while a request is served carries its
`request_id` (common.requestid.CURRENT), library lines included.

Every record passes `common.redact.redact` before it is rendered (the one redaction path):
exceptions are rendered there as plain tracebacks, never with local variables (structlog
renders locals through `rich` when it finds it, and a frame's locals hold request headers,
credentials and connection strings), malformed requests are summarised without their bytes,
and credentials and row values are scrubbed from every line.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from bridgehead.common.commands import UsageError
from bridgehead.common.config.base import LoggingConfig
from bridgehead.common.redact import redact
from bridgehead.common.requestid import CURRENT

_writer: logging.handlers.QueueListener | None = None


def add_request_id(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The structlog processor that names the request a line was logged in, if any."""
    current = CURRENT.get()
    if current is not None and "request_id" not in event_dict:
        event_dict["request_id"] = current
    return event_dict


def formatter(json: bool) -> logging.Formatter:
    """Records rendered as JSON lines or console text, each redacted first."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    chain: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        foreign_pre_chain=chain,
    )


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def configure(
    level: str = "INFO",
    json: bool | None = None,
    *,
    file: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> None:
    """Send every log line to `file` (rotated at `max_bytes`, `backups` kept) or stderr;
    `json` None: JSON unless the destination is a terminal."""
    global _writer  # noqa: PLW0603 - one log destination per process, like the root logger
    close()
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler(sys.stderr)
        terminal = is_terminal(sys.stderr)
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        _writer = logging.handlers.QueueListener(lines, rotating)
        _writer.start()
        handler, terminal = logging.handlers.QueueHandler(lines), False
    handler.setFormatter(formatter(not terminal if json is None else json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def close() -> None:
    """Write out the lines queued for the log file and close it (at exit, or before the
    destination changes)."""
    global _writer
    if _writer is None:
        return
    writer, _writer = _writer, None
    writer.stop()
    for handler in writer.handlers:
        handler.close()
    root = logging.getLogger()
    root.handlers[:] = [
        h for h in root.handlers if not isinstance(h, logging.handlers.QueueHandler)
    ]


atexit.register(close)


def apply(settings: LoggingConfig) -> None:
    """Logging as a config's `logging:` section says; UsageError if its file cannot be opened."""
    json = {"auto": None, "json": True, "console": False}[settings.format]
    try:
        configure(
            settings.level,
            json,
            file=settings.file,
            max_bytes=settings.max_bytes,
            backups=settings.backups,
        )
    except OSError as exc:
        raise UsageError(
            f"logging.file {settings.file}: {exc.strerror or exc}; make its folder writable "
            "by this user, or name another file (or none, for stderr) in the config"
        ) from None
