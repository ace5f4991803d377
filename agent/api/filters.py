"""Turns a list request's query string into a statement plan, or a 400 saying why not.

`?col=op.value` filters (ops eq neq gt gte lt lte like in is, each optionally `not.`),
`order=a.asc,b.desc`, `select=a,b`, `limit=N`, `cursor=C`. Column names are looked up in the
resource's allow-list; values are parsed by the column's kind and only ever bound.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridgehead.adapters.sql import (
    LIKE_ESCAPE,
    And,
    Compare,
    Condition,
    In,
    IsNull,
    Not,
    Op,
    Or,
    OrderBy,
)
from bridgehead.adapters.types import ORDERABLE, Column, Kind
from bridgehead.agent.catalog import Resource
from bridgehead.agent.values import parse
from bridgehead.common.errors import BadRequest

RESERVED = frozenset({"select", "order", "limit", "cursor"})
LISTS = frozenset({"select", "order"})
"""Parameters that may be repeated, as clients write arrays without `explode: false`."""
DEFAULT_LIMIT = 100
MAX_IN_VALUES = 1000
_COMPARISONS = {"eq": Op.EQ, "neq": Op.NEQ, "gt": Op.GT, "gte": Op.GTE, "lt": Op.LT, "lte": Op.LTE}
_OPERATORS = (*_COMPARISONS, "like", "in", "is")


@dataclass(frozen=True)
class ListPlan:
    filters: tuple[Condition, ...]
    filter_pairs: tuple[tuple[str, str], ...]
    order: tuple[OrderBy, ...]
    order_text: str
    select: tuple[Column, ...]
    limit: int
    cursor: str | None


def plan_list(resource: Resource, query: Sequence[tuple[str, str]]) -> ListPlan:
    filters: list[Condition] = []
    pairs: list[tuple[str, str]] = []
    special: dict[str, str] = {}
    for name, value in query:
        if name in LISTS and name in special:  # select=a&select=b is select=a,b
            special[name] += f",{value}"
            continue
        if name in RESERVED:
            if name in special:
                raise BadRequest(f"{name} is given twice; give it once")
            special[name] = value
            continue
        filters.append(parse_filter(resource, name, value))
        pairs.append((name, value))
    order_text = special.get("order", "")
    return ListPlan(
        filters=tuple(filters),
        filter_pairs=tuple(pairs),
        order=parse_order(resource, order_text),
        order_text=order_text,
        select=parse_select(resource, special.get("select")),
        limit=parse_limit(resource, special.get("limit")),
        cursor=special.get("cursor") or None,
    )


def _column(resource: Resource, name: str, use: str) -> Column:
    column = resource.column(name)
    if column is None:
        names = ", ".join(c.name for c in resource.columns)
        raise BadRequest(f"unknown column {name!r} in {use}; columns of {resource.name}: {names}")
    return column


def parse_filter(resource: Resource, name: str, text: str) -> Condition:
    column = _column(resource, name, "filter")
    negate = text.startswith("not.")
    body = text[4:] if negate else text
    op, dot, operand = body.partition(".")
    if not dot or op not in _OPERATORS:
        raise BadRequest(
            f"filter {name}: {op or text!r} is not an operator; write {name}=OP.VALUE "
            f"with OP one of {', '.join(_OPERATORS)} (optionally prefixed by not.)"
        )
    condition = _condition(column, op, operand)
    return Not(condition) if negate else condition


def _value(column: Column, text: str) -> Any:
    try:
        return parse(column.type, text)
    except ValueError as exc:
        raise BadRequest(f"filter {column.name}: {text!r}: {exc}") from None


def _condition(column: Column, op: str, operand: str) -> Condition:
    kind = column.type.kind
    if op not in operators(kind):
        raise BadRequest(
            f"filter {column.name}: {op} does not apply to {kind} columns; "
            f"use one of {', '.join(operators(kind))}"
        )
    as_text = kind is Kind.UNKNOWN  # served as text, so compared as text
    if op == "is":
        return _is(column, operand)
    if op == "in":
        values = tuple(_value(column, v) for v in _in_list(column, operand))
        return In(column.name, values, as_text)
    if op == "like":
        return Compare(column.name, Op.LIKE, like_pattern(operand), as_text)
    return Compare(column.name, _COMPARISONS[op], _value(column, operand), as_text)


def operators(kind: Kind) -> tuple[str, ...]:
    """The filter operators a column of this kind supports (the OpenAPI document lists them):
    order comparisons where the kind has an order, `like` on text."""
    if kind is Kind.STRING:
        return _OPERATORS
    if kind is Kind.UNKNOWN:
        return ("eq", "neq", "like", "in", "is")
    if kind in ORDERABLE:
        return (*_COMPARISONS, "in", "is")
    return ("eq", "neq", "in", "is")


def like_pattern(text: str) -> str:
    """A `like` operand as a LIKE pattern: `*` and `%` match any run of characters, `\\`
    makes the next character literal; everything else, `_` included, is literal."""
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char in "*%":
            out.append("%")
            continue
        literal = next(chars, "\\") if char == "\\" else char
        out.append(LIKE_ESCAPE + literal if literal in _LIKE_SPECIAL else literal)
    return "".join(out)


_LIKE_SPECIAL = frozenset({"%", "_", LIKE_ESCAPE})


def _is(column: Column, operand: str) -> Condition:
    if operand == "null":
        return IsNull(column.name)
    if operand in ("true", "false") and column.type.kind is Kind.BOOLEAN:
        return Compare(column.name, Op.EQ, operand == "true")
    raise BadRequest(
        f"filter {column.name}: is takes null (or true/false on boolean columns), not {operand!r}"
    )


def _in_list(column: Column, operand: str) -> list[str]:
    if not (operand.startswith("(") and operand.endswith(")")) or len(operand) < 3:
        raise BadRequest(f"filter {column.name}: in takes a list like in.(1,2,3)")
    try:
        values = next(csv.reader([operand[1:-1]], skipinitialspace=True, strict=True))
    except csv.Error:
        raise BadRequest(f"filter {column.name}: the in list is not well formed") from None
    if len(values) > MAX_IN_VALUES:
        raise BadRequest(f"filter {column.name}: in takes at most {MAX_IN_VALUES} values")
    return values


def parse_order(resource: Resource, text: str) -> tuple[OrderBy, ...]:
    """The requested order, then the key columns, so that every row has a unique position."""
    order: list[OrderBy] = []
    seen: set[str] = set()
    for term in filter(None, (t.strip() for t in text.split(","))):
        name, _, direction = term.rpartition(".") if "." in term else (term, "", "asc")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"order: {term!r}: direction must be asc or desc, like {name}.desc")
        column = _column(resource, name, "order")
        if column.type.kind not in ORDERABLE:
            raise BadRequest(f"order: column {name!r} ({column.type.kind}) cannot be ordered by")
        if name not in seen:
            seen.add(name)
            order.append(OrderBy(name, direction == "desc", column.nullable))
    tiebreak = resource.key or tuple(c for c in resource.columns if c.type.kind in ORDERABLE)
    for column in tiebreak:
        if column.name not in seen:
            seen.add(column.name)
            order.append(OrderBy(column.name, False, column.nullable))
    return tuple(order)


def parse_select(resource: Resource, text: str | None) -> tuple[Column, ...]:
    if text is None:
        return resource.columns
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise BadRequest("select is empty; name columns like select=id,name or leave it out")
    return tuple(_column(resource, name, "select") for name in names)


def parse_limit(resource: Resource, text: str | None) -> int:
    cap = resource.config.max_rows
    if text is None:
        return min(DEFAULT_LIMIT, cap)
    if not text.isdigit() or int(text) < 1:
        raise BadRequest(f"limit must be a whole number from 1 to {cap}, not {text!r}")
    return min(int(text), cap)


def after(order: Sequence[OrderBy], values: Sequence[Any]) -> Condition | None:
    """Rows strictly after `values` in `order` (NULL sorts as the largest value); None: no rows."""
    term: Condition | None = None
    for spec, value in reversed(list(zip(order, values, strict=True))):
        beyond = _beyond(spec, value)
        if term is None:
            term = beyond
            continue
        same = IsNull(spec.column) if value is None else Compare(spec.column, Op.EQ, value)
        within = And((same, term))
        term = within if beyond is None else Or((beyond, within))
    return term


def _beyond(spec: OrderBy, value: Any) -> Condition | None:
    if value is None:
        return None if not spec.descending else Not(IsNull(spec.column))
    op = Op.LT if spec.descending else Op.GT
    strictly = Compare(spec.column, op, value)
    if spec.nullable and not spec.descending:
        return Or((strictly, IsNull(spec.column)))
    return strictly
