"""Values across the API boundary, per column kind, losslessly (SPEC §3).

`parse` turns request text (a filter value, a key segment) into the canonical Python value
for a kind, or raises ValueError naming what was expected. `encoder` returns the function
that turns a canonical value into its JSON form: DECIMAL as an exact string, date/time as
ISO 8601, binary as base64, GUID as a string, NULL as null.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from adapters.types import Kind

Encoder = Callable[[Any], Any]

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}


def _integer(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ValueError("expected an integer") from None


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("expected a decimal number such as 12.30") from None
    if not value.is_finite():
        raise ValueError("expected a finite decimal number")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("expected a number") from None


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _iso(parser: Callable[[str], Any], example: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return parser(text.strip())
        except ValueError:
            raise ValueError(f"expected ISO 8601 like {example}") from None

    return parse


def _timestamptz(text: str) -> dt.datetime:
    value = _iso(dt.datetime.fromisoformat, "2024-05-01T12:30:00+00:00")(text)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ValueError("expected a UUID like 123e4567-e89b-12d3-a456-426614174000") from None


def _binary(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected base64") from None


PARSERS: dict[Kind, Callable[[str], Any]] = {
    Kind.INTEGER: _integer,
    Kind.DECIMAL: _decimal,
    Kind.FLOAT: _float,
    Kind.BOOLEAN: _boolean,
    Kind.STRING: str,
    Kind.UNKNOWN: str,
    Kind.DATE: _iso(dt.date.fromisoformat, "2024-05-01"),
    Kind.TIME: _iso(dt.time.fromisoformat, "12:30:00"),
    Kind.TIMESTAMP: _iso(dt.datetime.fromisoformat, "2024-05-01T12:30:00"),
    Kind.TIMESTAMPTZ: _timestamptz,
    Kind.UUID: _uuid,
    Kind.BINARY: _binary,
}


def parse(kind: Kind, text: str) -> Any:
    return PARSERS[kind](text)


def json_default(value: Any) -> Any:
    """What orjson cannot write itself: DECIMAL as exact text, binary as base64."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any, *, naive_utc: bool = False) -> bytes:
    """JSON as the API writes it. orjson writes dates, times (ISO 8601, with the offset when
    there is one) and UUIDs itself; `json_default` covers DECIMAL and binary. `naive_utc`
    writes naive datetimes as UTC (`+00:00`): for rows whose only naive ones are UTC."""
    return orjson.dumps(value, default=json_default, option=_NAIVE_UTC if naive_utc else 0)


_NAIVE_UTC = orjson.OPT_NAIVE_UTC


def text(value: Any) -> str:
    """A value as one CSV field: the same text its JSON form carries; NULL is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | bytes | bytearray | memoryview):
        return str(json_default(value))
    return str(value)


def _text(value: Any) -> Any:
    if isinstance(value, str | bytes | bytearray | memoryview):
        return value
    return str(value)


ENCODERS: dict[Kind, Encoder | None] = {Kind.UNKNOWN: _text}
"""Per-kind fixes before `dumps`; kinds not listed pass through as the decoder left them."""


def encoder(kind: Kind, decode: Encoder | None) -> Encoder | None:
    """The driver-value → encodable-value function for a column, or None to pass values as is."""
    encode = ENCODERS.get(kind)
    if decode is None:
        return encode
    if encode is None:
        return decode

    def both(value: Any) -> Any:
        return encode(decode(value))

    return both


def _json_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("expected an integer")


def _json_decimal(value: Any) -> Decimal:
    if isinstance(value, str):
        return _decimal(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _decimal(str(value))
    raise ValueError('expected a decimal as a string such as "12.30"')


def _json_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError("expected a number")


def _json_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("expected a string")


JSON_PARSERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.INTEGER: _json_integer,
    Kind.DECIMAL: _json_decimal,
    Kind.FLOAT: _json_float,
    Kind.BOOLEAN: _json_boolean,
    Kind.STRING: _json_text,
    Kind.UNKNOWN: _json_text,
}


def from_json(kind: Kind, value: Any) -> Any:
    """The canonical value for a JSON value in a request body; ValueError says what was expected."""
    if value is None:
        return None
    parser = JSON_PARSERS.get(kind)
    return parser(value) if parser else PARSERS[kind](_json_text(value))
