"""MySQL/MariaDB errors by the server's own error number, and the caller's detail for each.

Connector/ODBC writes the server's number as `(NNNN)` after its message, and reports some
server errors on prepared statements as SQLSTATE 01000 warnings, so the number, not the
SQLSTATE, decides. Details name columns and constraints (identifiers only), never values;
values come before the names in these messages, so the last name found is the one taken.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from bridgehead.adapters import errors
from bridgehead.adapters.dialects.refusals import (
    CHECK_FIX,
    CHILDREN_EXIST_FIX,
    NOT_NULL_FIX,
    PARENT_MISSING_FIX,
    UNIQUE_FIX,
    refusal,
    rejected_value,
)

_NATIVE = re.compile(r"\((\d{4,5})\)(?:\s*\(SQL\w+\))?\s*$")
_NAME = r"[`']([^`']+)[`']"
_COLUMN = re.compile(rf"(?:column|Column|Field) (?:`[^`]*`\.)*{_NAME}")
_FOREIGN = re.compile(rf"CONSTRAINT {_NAME} FOREIGN KEY \({_NAME}\)")
_UNIQUE = re.compile(rf"for key {_NAME}")
_CHECK = re.compile(rf"CONSTRAINT {_NAME} failed")
_TOKEN = re.compile(r"`(?:[^`]|``)*`|\?|'(?:[^']|'')*'")

NOT_NULL = frozenset({1048, 1364})  # column cannot be null; field has no default value
FOREIGN_KEY = frozenset({1451, 1452})  # parent row still referenced; parent row missing
UNIQUE = frozenset({1062})
CHECK = frozenset({3819, 4025})
UNSTORABLE_TEXT = frozenset({1267, 1270, 1271})  # illegal mix of collations (of 2, 3 or more
# operands): 4-byte UTF-8 text compared with a utf8mb3 column
BAD_VALUES = frozenset({1138, 1264, 1265, 1292, 1366, 1367, 1406})
_CONSTRAINTS = NOT_NULL | FOREIGN_KEY | UNIQUE | CHECK

BAD_VALUE = (
    "it is not a valid value for that column (out of range, too long, or not one of its "
    "allowed values)"
)
BAD_TEXT = (
    "it holds characters the column's character set cannot store (such as emoji in a "
    "utf8mb3 column)"
)


_NAMED = {
    True: (_UNIQUE, "unique constraint", UNIQUE_FIX),
    False: (_CHECK, "check constraint", CHECK_FIX),
}


def native_code(message: str) -> int | None:
    """The server's error number, which the driver writes as `(NNNN)` after its message."""
    found = _NATIVE.search(message)
    return int(found.group(1)) if found else None


def _last(pattern: re.Pattern[str], message: str) -> re.Match[str] | None:
    found = list(pattern.finditer(message))
    return found[-1] if found else None


def _unstorable_text(code: int | None, message: str) -> bool:
    return code in UNSTORABLE_TEXT or (code == 1366 and "incorrect string value" in message.lower())


def classify(message: str) -> type[errors.SourceError] | None:
    """The error class for a server error number Bridgehead knows, else None."""
    code = native_code(message)
    if _unstorable_text(code, message):
        return errors.TextNotStorable
    if code in _CONSTRAINTS:
        return errors.ConstraintViolated
    if code in BAD_VALUES:
        return errors.ValueRejected
    return None


def explain(message: str) -> str | None:
    """The caller's detail for a known server error, naming its column or constraint."""
    code = native_code(message)
    column = _last(_COLUMN, message)
    name = column.group(1) if column else None
    if code in NOT_NULL:
        return refusal("not-null constraint", NOT_NULL_FIX, column=name)
    if code in FOREIGN_KEY and (fk := _last(_FOREIGN, message)):
        fix = CHILDREN_EXIST_FIX if code == 1451 else PARENT_MISSING_FIX
        return refusal("foreign key constraint", fix, column=fk.group(2), constraint=fk.group(1))
    if code in UNIQUE | CHECK:
        pattern, kind, fix = _NAMED[code in UNIQUE]
        found = _last(pattern, message)
        return refusal(kind, fix, constraint=found.group(1) if found else None)
    if code in BAD_VALUES:
        return rejected_value(name, BAD_TEXT if _unstorable_text(code, message) else BAD_VALUE)
    return None


def text_parameter_columns(
    sql: str, params: Sequence[Any], test: Callable[[str], bool]
) -> list[str]:
    """The columns whose bound text parameter passes `test`: in the SQL Bridgehead renders, a
    `?` follows the quoted column it is compared with or set to (`c` = ?, `c` IN (?, ?))."""
    column: str | None = None
    names: list[str] = []
    index = 0
    for token in _TOKEN.findall(sql):
        if token.startswith("`"):
            column = token[1:-1].replace("``", "`")
        elif token == "?":  # noqa: S105 - a placeholder, not a password
            value = params[index] if index < len(params) else None
            index += 1
            if column and isinstance(value, str) and test(value) and column not in names:
                names.append(column)
    return names


def _outside_bmp(text: str) -> bool:
    return any(ord(c) > 0xFFFF for c in text)


def refine(failure: errors.SourceError, sql: str, params: Sequence[Any]) -> errors.SourceError:
    """Name the column of an unstorable text the message does not name (collation errors)."""
    if type(failure) is errors.TextNotStorable and "public_detail" not in vars(failure):
        columns = text_parameter_columns(sql, params, _outside_bmp)
        detail = rejected_value(columns[0], BAD_TEXT) if columns else None
        if detail is not None:
            failure.public_detail = detail
    return failure
