"""Comma-separated lists in a request (`in.(a,b)`, a composite key `7,"a,b"`), split by the
grammar the OpenAPI document publishes (`openapi_patterns`): each item is text without `,`
or `"`, or is double-quoted with `""` standing for a quote, as in a CSV line. Anything the
document admits splits; anything else is a ValueError, never a guess.
"""

from __future__ import annotations

import re

_ITEM = re.compile(r'"((?:[^"]|"")*)"|([^,"]*)')


def split_items(text: str, *, skip_initial_spaces: bool = False) -> list[str]:
    """The items of `text`; with `skip_initial_spaces`, spaces before an item are not part of
    it (`in.(1, 2)`). ValueError if `text` is not such a list."""
    items: list[str] = []
    position = 0
    while True:
        if skip_initial_spaces:
            while text.startswith(" ", position):
                position += 1
        match = _ITEM.match(text, position)
        assert match is not None  # the unquoted form matches the empty string
        quoted, plain = match.groups()
        items.append(quoted.replace('""', '"') if quoted is not None else plain)
        position = match.end()
        if position == len(text):
            return items
        if text[position] != ",":
            raise ValueError(f"text after an item at character {position + 1}")
        position += 1
