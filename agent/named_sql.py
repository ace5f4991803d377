"""Named parameters in configured SQL: `:name` placeholders turned into driver `?` marks.

Only the config's SQL goes through here. The scanner skips string literals, quoted
identifiers, comments and PostgreSQL `::` casts, so `':x'` or `a::date` are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_TOKENS = re.compile(
    r"""
      '(?:[^']|'')*'            # string literal
    | "(?:[^"]|"")*"            # quoted identifier
    | `[^`]*`                   # MySQL quoted identifier
    | --[^\n]*                  # line comment
    | /\*.*?\*/                 # block comment
    | ::                        # PostgreSQL cast
    | :(?P<name>[A-Za-z_]\w*)   # a named parameter
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class PositionalSql:
    sql: str
    """The statement with `?` in place of each `:name`."""
    names: tuple[str, ...]
    """The parameter for each `?`, in order (a name used twice appears twice)."""


@cache
def positional(sql: str) -> PositionalSql:
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return match.group(0)
        names.append(name)
        return "?"

    return PositionalSql(_TOKENS.sub(replace, sql), tuple(names))


def placeholders(sql: str) -> set[str]:
    """The parameter names a statement uses (what the config check compares with params)."""
    return set(positional(sql).names)


def pieces(sql: str) -> tuple[str, ...]:
    """The statement's text split where its parameters go (one more piece than parameters)."""
    parts: list[str] = []
    start = 0
    for match in _TOKENS.finditer(sql):
        if match.group("name") is not None:
            parts.append(sql[start : match.start()])
            start = match.end()
    return (*parts, sql[start:])
