"""The limits every request value meets when it is parsed, before any driver sees it.

A value is bounded by its column's (or parameter's) type and by what its source stores
exactly as sent (`ValueRules`): integers by the column's range, decimals by the column's
digits before the point (`MAX_DECIMAL_DIGITS` when it declares none), floats finite unless
the database stores that infinity or NaN, text and binary by the declared length, text
without U+0000 where the database or driver would drop it. One filter or key value is at
most `MAX_REQUEST_TEXT` characters; body values are bounded by the body limit. Each refusal
is a ValueError saying what is allowed; callers name the parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridgehead.adapters.types import INT64, ColumnType, Kind

MAX_DECIMAL_DIGITS = 1000
"""Digits before or after the point of a decimal whose column declares no precision."""
MAX_REQUEST_TEXT = 1 << 20
"""Characters of one value in a filter, a key or a cursor (1 MiB)."""


@dataclass(frozen=True, slots=True)
class WideNumber:
    """A JSON number beyond a double's range, kept as its text for its column to judge."""

    text: str


def check_request_text(text: str) -> None:
    if len(text) > MAX_REQUEST_TEXT:
        raise ValueError(
            f"a value in a filter or key may hold at most {MAX_REQUEST_TEXT} characters, "
            f"not {len(text)}"
        )


def bounded(column_type: ColumnType, value: Any, *, lengths: bool = True) -> Any:
    """The value, if the column's type can hold it; ValueError saying the limits otherwise.
    `lengths`: hold text and binary to the column's declared length (values to store)."""
    kind = column_type.kind
    if kind is Kind.INTEGER:
        low, high = column_type.bounds or INT64
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
    elif kind is Kind.DECIMAL:
        _check_digits(column_type, value)
    elif kind is Kind.FLOAT:
        _check_float(column_type, value)
    elif kind in (Kind.STRING, Kind.UNKNOWN):
        _check_text(column_type, value, lengths)
    elif kind is Kind.BINARY and lengths:
        _check_length(column_type, len(value), "bytes")
    return value


def _check_digits(column_type: ColumnType, value: Decimal) -> None:
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    whole = max(len(digits) + exponent, 0)
    fraction = max(-exponent, 0)
    precision, scale = column_type.precision, column_type.scale or 0
    most = precision - scale if precision else MAX_DECIMAL_DIGITS
    if whole > most or fraction > MAX_DECIMAL_DIGITS:
        limit = f"{most} digits before the point and {MAX_DECIMAL_DIGITS} after it"
        raise ValueError(f"expected a decimal number with at most {limit}")


def spelling(value: float) -> str:
    """How the API writes a non-finite float."""
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _check_float(column_type: ColumnType, value: float) -> None:
    if math.isfinite(value) or spelling(value) in column_type.rules.non_finite:
        return
    allowed = ", ".join(sorted(column_type.rules.non_finite)) or "none"
    raise ValueError(
        f"this database cannot store {spelling(value)} (non-finite values it stores: "
        f"{allowed}); send a finite number"
    )


def _check_text(column_type: ColumnType, value: str, lengths: bool) -> None:
    if not column_type.rules.keeps_nul and "\0" in value:
        raise ValueError("this database cannot store the NUL character (U+0000) in text; remove it")
    if lengths:
        _check_length(column_type, len(value), "characters")


def _check_length(column_type: ColumnType, size: int, unit: str) -> None:
    if column_type.length is not None and size > column_type.length:
        raise ValueError(
            f"expected at most {column_type.length} {unit} (the column's declared length), "
            f"not {size}"
        )
