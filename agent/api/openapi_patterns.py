"""The regular expressions in the OpenAPI document: what a value of each column looks like in
a filter, a key or a body, as `agent.values` parses it and as it is served.

Rules: pure; a pattern accepts only what the agent accepts (so a generated value that fits is
taken), and the values it serves fit their pattern. Where the agent is more lenient than a
regular expression can say exactly (an integer's range, a day past the 28th), the pattern is
the stricter, safe side: integers of fewer digits than the bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridgehead.adapters.types import INT64, ColumnType, Kind

_YEAR = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_DATE = (
    f"{_YEAR}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    f"|02-(0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29"
)
"""A Gregorian calendar date, years 0001-9999 (Python's), 29 February only in leap years."""
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_FLOAT = r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2})?"
_BASE64 = r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
LIST_ITEM = r"[^,\"]*|\"([^\"]|\"\")*\""
"""A text value in a comma-separated list (`in.(...)`, a composite key): as in a CSV line."""

_FIXED: dict[Kind, str] = {
    Kind.FLOAT: _FLOAT,
    Kind.BOOLEAN: "true|false",
    Kind.DATE: _DATE,
    Kind.TIME: _TIME,
    Kind.TIMESTAMP: f"({_DATE})T{_TIME}",
    Kind.TIMESTAMPTZ: f"({_DATE})T{_TIME}{_OFFSET}",
    Kind.UUID: _UUID,
    Kind.BINARY: _BASE64,
}


def integer_bounds(column_type: ColumnType) -> tuple[int, int]:
    return column_type.bounds or INT64


def _integer(column_type: ColumnType) -> str:
    low, high = integer_bounds(column_type)
    digits = max(len(str(min(-low, high))) - 1, 1)
    sign = "-?" if low < 0 else ""
    return f"{sign}[0-9]{{1,{digits}}}"


def _decimal(column_type: ColumnType) -> str:
    precision, scale = column_type.precision, column_type.scale or 0
    whole = precision - scale if precision else None
    fraction = f"(\\.[0-9]{{1,{scale}}})?" if precision and scale else ""
    if precision is None:
        return r"-?[0-9]+(\.[0-9]+)?"
    if whole == 0:
        return f"-?0{fraction}"
    return f"-?[0-9]{{1,{whole}}}{fraction}"


def value(column_type: ColumnType) -> str | None:
    """A value of this column type as text (unanchored), or None: any text."""
    kind = column_type.kind
    if kind is Kind.INTEGER:
        return _integer(column_type)
    if kind is Kind.DECIMAL:
        return _decimal(column_type)
    return _FIXED.get(kind)


def anchored(pattern: str) -> str:
    return f"^({pattern})$"


def listed(column_type: ColumnType) -> str:
    """One value of a comma-separated list: a value, or for text a CSV field."""
    return value(column_type) or LIST_ITEM


def key(types: Sequence[ColumnType]) -> str:
    """A composite key: the values in key order, comma-separated as in a CSV line."""
    return anchored(",".join(f"({listed(t)})" for t in types))


def filter_value(column_type: ColumnType, operators: Sequence[str]) -> str:
    """A whole filter, `[not.]op.value`, with only the operators this column supports."""
    single = value(column_type) or ".*"
    item = f"({listed(column_type)})"
    forms = []
    compare = [op for op in operators if op not in ("like", "in", "is")]
    if compare:
        forms.append(f"({'|'.join(compare)})\\.({single})")
    if "like" in operators:
        forms.append(r"like\..*")
    if "in" in operators:
        forms.append(f"in\\.\\({item}(,{item})*\\)")
    if "is" in operators:
        nulls = "null|true|false" if column_type.kind is Kind.BOOLEAN else "null"
        forms.append(f"is\\.({nulls})")
    return f"^(not\\.)?({'|'.join(forms)})$"
