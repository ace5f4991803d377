# The documented value mapping, applied to what the database itself reports: given a column's
# kind and the database's own text form of a value (a cast to text in SQL; hex for binary),
# say whether the value Bridgehead served in JSON is that value. Exact where the mapping is
# exact (integers, decimals with the column's scale, text); semantic where textual forms
# legitimately differ (timestamps parsed on both sides), with the served form checked too.
from __future__ import annotations

import base64
import math
import re
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from samplecatalog import Column

NON_FINITE = {"infinity": "Infinity", "-infinity": "-Infinity", "nan": "NaN", "inf": "Infinity"}
TRUE, FALSE = {"t", "true", "1"}, {"f", "false", "0"}
_FORMS = {
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "time": re.compile(r"\d{2}:\d{2}:\d{2}(\.\d{6})?"),
    "timestamp": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?"),
    "timestamptz": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00"),
}


def expected_decimal(text: str, scale: int | None) -> str:
    """The exact string for a DECIMAL: the database's digits with the column's scale."""
    if scale is None:
        return text
    try:
        return str(Decimal(text).quantize(Decimal(1).scaleb(-scale)))
    except InvalidOperation:
        return text


def _float_matches(served: Any, text: str) -> bool:
    special = NON_FINITE.get(text.strip().lower())
    if special:
        return bool(served == special)
    if isinstance(served, bool) or not isinstance(served, int | float):
        return False
    reference = float(text)
    return served == reference or math.isclose(served, reference, rel_tol=1e-15)


def _temporal_matches(kind: str, served: Any, text: str) -> bool:
    if not isinstance(served, str) or not _FORMS[kind].fullmatch(served):
        return False
    parse = {"date": date.fromisoformat, "time": time.fromisoformat}.get(
        kind, datetime.fromisoformat
    )
    try:
        return bool(parse(served) == parse(text))
    except ValueError:
        return False


def _integer_matches(served: Any, text: str) -> bool:
    return not isinstance(served, bool) and isinstance(served, int) and served == int(text)


def _boolean_matches(served: Any, text: str) -> bool:
    return text.lower() in TRUE | FALSE and served is (text.lower() in TRUE)


def _binary_matches(served: Any, text: str) -> bool:
    return bool(served == base64.b64encode(bytes.fromhex(text)).decode())


def matches(column: Column, served: Any, text: str | None) -> bool:
    """Whether served is the JSON the documented mapping gives the database's value text."""
    if text is None:
        return served is None
    kind = column.kind
    if kind in _FORMS:
        return _temporal_matches(kind, served, text)
    if kind == "decimal":
        return bool(served == expected_decimal(text, column.scale))
    check = {
        "integer": _integer_matches,
        "float": _float_matches,
        "boolean": _boolean_matches,
        "binary": _binary_matches,
        "uuid": lambda served, text: bool(served == text.lower()),
    }.get(kind, lambda served, text: bool(served == text))  # text, and unknown types
    return check(served, text)


def stored_as_sent(column: Column, sent: Any, text: str | None) -> bool:
    """Whether the database stored what was sent; char(n) pads, so padding is ignored."""
    if column.declared == "character" and isinstance(sent, str) and text is not None:
        return sent.rstrip(" ") == text.rstrip(" ")
    return matches(column, sent, text)


def describe(column: Column, text: str | None) -> str:
    """What the mapping expects, for an assertion message."""
    if text is None:
        return "null"
    if column.kind == "decimal":
        return repr(expected_decimal(text, column.scale))
    if column.kind in _FORMS:
        return f"{column.kind} {_FORMS[column.kind].pattern} equal to {text!r}"
    if column.kind == "binary":
        return repr(base64.b64encode(bytes.fromhex(text)).decode())
    return f"{column.kind} from {text!r}"
