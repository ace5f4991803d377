"""Refusals: the caller's detail for a statement the database refused, naming the column or
constraint its message names (identifiers only, never values)."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[^\W\d][\w$. ]{0,127}")


def identifiers(*names: str | None) -> list[str]:
    """The names that are plain identifiers (letters, digits, `_`, `$`, `.`, spaces): a name taken
    from a driver message reaches a caller only if it cannot be a fragment of a value."""
    return [n for n in names if n is not None and _IDENTIFIER.fullmatch(n)]


def refusal(
    kind: str, fix: str, *, column: str | None = None, constraint: str | None = None
) -> str | None:
    """`... violates a constraint: <kind> 'name' on column 'col'; <fix>.`, naming only the
    parts that are identifiers; None when neither is."""
    column, constraint = (next(iter(identifiers(n)), None) for n in (column, constraint))
    if column is None and constraint is None:
        return None
    named = f" {constraint!r}" if constraint else ""
    on = f" on column {column!r}" if column else ""
    return (
        "The database refused the change because it violates a constraint: "
        f"{kind}{named}{on}; {fix}."
    )


NOT_NULL_FIX = "send a value for that column"
UNIQUE_FIX = "a row with the same value already exists"
PARENT_MISSING_FIX = "the row it refers to does not exist"
CHILDREN_EXIST_FIX = "other rows still refer to this row; change or delete them first"
CHECK_FIX = "send values the constraint allows"


def rejected_value(column: str | None, reason: str) -> str | None:
    """The detail of a value the database refused for one column, if the column is named."""
    named = identifiers(column)
    return f"The database rejected the value for column {named[0]!r}: {reason}." if named else None
