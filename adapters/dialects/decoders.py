"""Decoders: what a driver returns turned into the canonical value for a column's kind.

A decoder raises (ValueError, TypeError, ArithmeticError) for a value its kind cannot carry;
the API then serves that value as the database's text.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

Decoder = Callable[[Any], Any]


def utc_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def as_utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def as_uuid_text(value: Any) -> Any:
    """GUIDs as lower-case text, whatever case or type the driver hands back."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray) and len(value) == 16:
        return str(uuid.UUID(bytes_le=bytes(value)))
    return value


_TRUE_TEXT = frozenset({"1", "t", "true", "y", "yes", "on"})
_BOOL_TEXT = {"1": True, "0": False, "t": True, "f": False, "true": True, "false": False}


def as_bool(value: Any) -> Any:
    """Booleans whatever the driver makes of them: psqlODBC sends '1'/'0' (BoolsAsChar)."""
    if value.__class__ is bool:
        return value
    known = _BOOL_TEXT.get(value) if isinstance(value, str) else None
    if known is not None:
        return known
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_TEXT
    return bool(value)


def as_bytes(value: Any) -> Any:
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def parsed(parse: Callable[[str], Any]) -> Decoder:
    """A decoder for values fetched as text (ISO 8601 dates and times): text is parsed, and
    raises ValueError if it is not of the type (the API then serves it as it is, as text)."""

    def decode(value: Any) -> Any:
        return parse(value) if isinstance(value, str) else value

    return decode


def time_text(text: str) -> dt.time:
    """A time of day from the database's text, with 0 to 6 fractional digits (`12:00:00.5`)."""
    whole, dot, fraction = text.partition(".")
    if dot and fraction.isdigit() and len(fraction) < 6:
        text = f"{whole}.{fraction.ljust(6, '0')}"
    return dt.time.fromisoformat(text)


def zoned_text(text: str) -> dt.datetime:
    """An instant from the database's text: with its offset, or UTC when it has none."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def instant(value: Any) -> Any:
    """An instant, from the database's text or a driver's naive datetime meaning UTC (the
    sessions run in UTC; a named query's values come from the driver, not as text)."""
    return zoned_text(value) if isinstance(value, str) else as_utc(value)


def quantizer(scale: int | None) -> Decoder:
    """Decimal decoder for drivers that may hand back floats or text for DECIMAL columns."""
    exponent = Decimal(1).scaleb(-scale) if scale is not None else None

    def decode(value: Any) -> Any:
        if value is None or (isinstance(value, Decimal) and exponent is None):
            return value
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        if exponent is None:
            return number
        try:
            return number.quantize(exponent)
        except InvalidOperation:  # more digits than the context holds: serve it as stored
            return number

    return decode
