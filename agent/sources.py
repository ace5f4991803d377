"""The agent's sources: one adapter per `sources:` entry, made from the config, and opened
together."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from bridgehead.adapters import registry
from bridgehead.adapters.base import Adapter, SourceSettings
from bridgehead.adapters.errors import SourceError
from bridgehead.agent.config.model import AgentConfig, SourceConfig


def source_settings(name: str, source: SourceConfig, base_dir: Path) -> SourceSettings:
    return SourceSettings(
        name=name,
        adapter=source.adapter,
        target=source.target.get_secret_value(),
        pool_size=source.pool_size,
        query_timeout=source.query_timeout,
        connect_timeout=source.connect_timeout,
        base_dir=base_dir,
    )


def build_adapters(config: AgentConfig) -> dict[str, Adapter]:
    return {
        name: registry.load(source.adapter)(source_settings(name, source, config.base_dir))
        for name, source in config.sources.items()
    }


async def open_sources(adapters: Mapping[str, Adapter]) -> dict[str, SourceError]:
    """Connect to every source at once; the sources that failed, with why."""
    results = await asyncio.gather(*(a.open() for a in adapters.values()), return_exceptions=True)
    failed: dict[str, SourceError] = {}
    for name, result in zip(adapters, results, strict=True):
        if isinstance(result, SourceError):
            failed[name] = result
        elif isinstance(result, BaseException):
            raise result
    return failed
