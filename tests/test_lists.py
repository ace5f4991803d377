"""Comma-separated request lists split by the grammar the OpenAPI document publishes: every
list the document admits splits, quoted items round-trip, and nothing else is guessed at."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgehead.agent.api.lists import split_items
from bridgehead.agent.api.openapi_patterns import LIST_ITEM

ADMITTED = st.from_regex(rf"({LIST_ITEM})(,({LIST_ITEM}))*", fullmatch=True)


@given(ADMITTED)
def test_every_list_the_document_admits_splits(text: str) -> None:
    """No text matching the published pattern is refused (control characters, newlines and
    empty items included)."""
    assert len(split_items(text)) == text.count(",") - _commas_inside_quotes(text) + 1


@given(st.lists(st.text(), min_size=1, max_size=8))
def test_quoted_items_round_trip(items: list[str]) -> None:
    """Items written the CSV way, quotes doubled, come back exactly."""
    text = ",".join('"' + item.replace('"', '""') + '"' for item in items)
    assert split_items(text) == items


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a\nb,c", ["a\nb", "c"]),
        ("x,,y,", ["x", "", "y", ""]),
        ('"a,b",7', ["a,b", "7"]),
        ('"say ""hi"""', ['say "hi"']),
    ],
)
def test_plain_and_quoted_items(text: str, items: list[str]) -> None:
    """Unquoted items may hold anything but a comma or a quote; quoted ones anything."""
    assert split_items(text) == items


@pytest.mark.parametrize("text", ['"a"b', 'a"b', '"open', '1, "2"'])
def test_what_the_document_does_not_admit_is_refused(text: str) -> None:
    """Text after a closing quote, a quote inside an unquoted item, an unclosed quote, and a
    space before a quote are refused rather than guessed at."""
    with pytest.raises(ValueError, match="text after an item"):
        split_items(text)


def test_spaces_before_items_can_be_skipped() -> None:
    """`in.(1, 2)` lists may have spaces after their commas."""
    assert split_items('1, 2,  "3"', skip_initial_spaces=True) == ["1", "2", "3"]


def _commas_inside_quotes(text: str) -> int:
    inside, count = False, 0
    for char in text:
        if char == '"':
            inside = not inside
        elif char == "," and inside:
            count += 1
    return count
