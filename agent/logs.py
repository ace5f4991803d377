"""Logging set-up: structured lines on stderr, one format for the agent's and libraries' logs.

Exceptions are rendered as plain tracebacks, never with local variables: whatever optional
packages are installed (structlog renders locals through `rich` when it finds it), a frame's
locals hold request headers, credentials and connection strings.
"""

from __future__ import annotations

import logging
import sys

import structlog


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
    if json:
        chain.append(structlog.processors.format_exc_info)  # text, without locals
    formatter = structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=chain)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
