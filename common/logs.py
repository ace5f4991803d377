"""Logging set-up: structured lines on stderr, one format for the agent's and libraries' logs.

Every record passes `common.redact.redact` before it is rendered (the one redaction path):
exceptions are rendered there as plain tracebacks, never with local variables (structlog
renders locals through `rich` when it finds it, and a frame's locals hold request headers,
credentials and connection strings), malformed requests are summarised without their bytes,
and credentials and row values are scrubbed from every line.
"""

from __future__ import annotations

import logging
import sys

import structlog

from bridgehead.common.redact import redact


def configure(level: str = "INFO", json: bool = False) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    chain: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        foreign_pre_chain=chain,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
