"""Values across the API boundary, per column type, losslessly (the README's value mapping).

`parse` turns request text (a filter value, a key segment) into the canonical Python value
for a column, and `from_json` does the same for a value in a JSON body; both raise ValueError
naming what was expected, and both bound the value by its column's type before any driver
sees it (`agent.bounds`). `encoder` returns the
function that turns what a driver returned into its JSON form: DECIMAL as an exact string,
date/time as ISO 8601, binary as base64, GUID as a string, NULL as null. A value its column's
type cannot carry (PostgreSQL's `infinity` date, a MariaDB zero date, text stored in a SQLite
INTEGER column, a non-finite float) is served as the database's own text: the fallback form,
counted, never a failed request and never a different value.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from bridgehead.adapters.dialects.decoders import time_text
from bridgehead.adapters.types import SERVED_NON_FINITE, ColumnType, Kind
from bridgehead.agent.bounds import WideNumber, bounded, check_request_text

Encoder = Callable[[Any], Any]

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}


def _integer(text: str) -> int:
    digits = text.strip()
    if len(digits.lstrip("+-")) > 40:  # int() of a long string is slow; no column is wider
        raise ValueError("expected an integer of at most 40 digits")
    try:
        return int(digits, 10)
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
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value) and text.strip() not in SERVED_NON_FINITE:
        raise ValueError(
            "expected a number within the range of a double, or Infinity, -Infinity or NaN"
        )
    return value


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
            raise ValueError(f"expected ISO 8601 like {example} (years 1 to 9999)") from None

    return parse


def _timestamptz(text: str) -> dt.datetime:
    value = _iso(dt.datetime.fromisoformat, "2024-05-01T12:30:00+00:00")(text)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _timestamp(text: str) -> dt.datetime:
    value = _iso(dt.datetime.fromisoformat, "2024-05-01T12:30:00")(text)
    assert isinstance(value, dt.datetime)
    if value.tzinfo is not None:
        raise ValueError(
            "this column holds times without a time zone: send it without an offset, "
            "like 2024-05-01T12:30:00"
        )
    return value


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
    Kind.TIME: _iso(time_text, "12:30:00"),
    Kind.TIMESTAMP: _timestamp,
    Kind.TIMESTAMPTZ: _timestamptz,
    Kind.UUID: _uuid,
    Kind.BINARY: _binary,
}


def parse(column_type: ColumnType, text: str) -> Any:
    """The canonical value of request text (a filter or key value) for a column of this type;
    ValueError if not, or if it is longer than any such value may be."""
    check_request_text(text)
    # A filter or key longer than the column's declared length matches nothing; it is not
    # refused for that (the text cap above bounds its cost).
    return bounded(column_type, PARSERS[column_type.kind](text), lengths=False)


def _parse(column_type: ColumnType, text: str) -> Any:
    return bounded(column_type, PARSERS[column_type.kind](text))


def from_text(column_type: ColumnType, text: str) -> Any:
    """The canonical value of a value to write that arrives as text (a CSV field), checked
    against the column's range and length as a JSON value is; ValueError saying why not."""
    return _parse(column_type, text)


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


_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _float_json(value: Any) -> Any:
    """JSON has no infinities or NaN (orjson would write null): they are served as text."""
    if value.__class__ is float and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    return value


def fallback_text(value: Any) -> str:
    """The fallback form of a value: its text (bytes as base64, non-finite floats spelled)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return str(_float_json(value))
    return str(value)


ENCODERS: dict[Kind, Encoder | None] = {Kind.UNKNOWN: _text, Kind.FLOAT: _float_json}
"""Per-kind fixes before `dumps`; kinds not listed pass through as the decoder left them."""


def encoder(
    kind: Kind, decode: Encoder | None, fell_back: Callable[[], None] = lambda: None
) -> Encoder | None:
    """The driver-value → encodable-value function for a column, or None to pass values as is.
    A value the decoder refuses (ValueError, TypeError, ArithmeticError) is served in its
    fallback form, and `fell_back` is called to count it."""
    encode = ENCODERS.get(kind)
    if decode is None:
        return encode

    def safe(value: Any) -> Any:
        try:
            decoded = decode(value)
        except (ValueError, TypeError, ArithmeticError):
            fell_back()
            return fallback_text(value)
        return decoded if encode is None else encode(decoded)

    return safe


def _json_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, WideNumber):
        return _integer(value.text)
    if isinstance(value, float) and value.is_integer():  # JSON's 3.0 is the integer 3
        return int(value)
    raise ValueError("expected an integer")


def _json_decimal(value: Any) -> Decimal:
    if isinstance(value, str):
        return _decimal(value)
    if isinstance(value, WideNumber):
        return _decimal(value.text)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _decimal(str(value))
    raise ValueError('expected a decimal as a string such as "12.30"')


def _json_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in SERVED_NON_FINITE:  # as the API serves them
        return float(value)
    if isinstance(value, WideNumber):
        raise ValueError("expected a number within the range of a double")
    raise ValueError("expected a number, or Infinity, -Infinity or NaN as a string")


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


def from_json(column_type: ColumnType, value: Any) -> Any:
    """The canonical value for a JSON value in a request body; ValueError says what was expected."""
    if value is None:
        return None
    parser = JSON_PARSERS.get(column_type.kind)
    if parser is None:
        return _parse(column_type, _json_text(value))
    return bounded(column_type, parser(value))
