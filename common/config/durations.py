"""Durations as the config writes them: `500ms`, `30s`, `5m`, `1h`, `1d`, or a number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds, from `30s` or `30`; raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 500ms, 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _PATTERN.match(str(value))
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; write a number with a unit: 500ms, 30s, 5m or 1h"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds
