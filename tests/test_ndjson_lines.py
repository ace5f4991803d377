"""`export.ndjson_lines` writes a chunk with one orjson call and turns the array into lines:
byte for byte what an orjson call per item writes, for any values, strings holding the very
separator it replaces, DECIMAL and binary values, NULLs first, columns of mixed kinds and
values that are not scalars (those chunks are written an item at a time)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bridgehead.agent.api.export import ndjson_lines
from bridgehead.agent.values import json_default

NAMES = ["id", "note", "amount", "blob"]
TRICKY = st.sampled_from(['},{"id":1', '"},{"id":', "\\", "\n", "é\u2028", "", "}{"])
SCALARS = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    TRICKY,
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.binary(max_size=6),
)
ITEM = st.fixed_dictionaries(dict.fromkeys(NAMES, SCALARS))


def one_by_one(items: list[dict[str, Any]]) -> bytes:
    option = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(i, default=json_default, option=option) for i in items)


@given(st.lists(ITEM, max_size=30))
def test_a_chunk_is_what_an_item_at_a_time_writes(items: list[dict[str, Any]]) -> None:
    before = [dict(item) for item in items]
    assert ndjson_lines(items, NAMES) == one_by_one(items)
    assert items == before  # not consumed unless asked


@given(st.lists(st.fixed_dictionaries({"id": st.integers(0, 99), "nested": st.just({"id": 1})})))
def test_values_that_are_not_scalars_are_written_an_item_at_a_time(
    items: list[dict[str, Any]],
) -> None:
    assert ndjson_lines(items, ["id", "nested"]) == one_by_one(items)


def test_decimal_columns_are_text_and_consumed_items_are_rewritten() -> None:
    items = [{"id": 1, "amount": None}, {"id": 2, "amount": Decimal("1.50")}]
    expected = b'{"id":1,"amount":null}\n{"id":2,"amount":"1.50"}\n'
    assert ndjson_lines(items, ["id", "amount"], consume=True) == expected
    assert items[1]["amount"] == "1.50"
