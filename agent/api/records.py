"""Records of CSV or NDJSON input, cut from bytes as they arrive (no I/O here), each with its
line number and the byte offset just past it, for import jobs and bulk loads alike; and
positions as JSON, each value coming back as the very value the driver gave.

Rules:
- CSV is RFC 4180: a header line first; a quoted field may hold line breaks (a record ends
  at a line break outside quotes); an empty field is NULL.
- NDJSON: one JSON object per line; blank lines are skipped.
- A record that cannot be read (not UTF-8, not JSON, the wrong number of fields) comes with
  its reason instead of its values, to be rejected by line; one longer than MAX_RECORD bytes
  stops the input (`RecordTooLong`).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson

MAX_RECORD = 16 << 20
"""The longest record accepted (a CSV record with its quoted line breaks), in bytes."""
Format = Literal["csv", "ndjson"]
MEDIA_FORMATS: dict[str, Format] = {"application/x-ndjson": "ndjson", "text/csv": "csv"}
"""The media types of record input (a bulk load's body), and their formats."""


def record_format(content_type: str) -> Format | None:
    """The format of a body of this Content-Type, or None if it is not record input."""
    return MEDIA_FORMATS.get(content_type.split(";", 1)[0].strip().lower())


class RecordTooLong(ValueError):
    """A record is over MAX_RECORD bytes: the input cannot be cut into records."""


@dataclass(frozen=True)
class Record:
    line: int
    """The line the record starts on (1 is the CSV header, or the first NDJSON line)."""
    end: int
    """The byte offset just past the record: where a resumed read asks to continue."""
    values: dict[str, Any] | None
    error: str | None = None


@dataclass
class Position:
    """Where a reader stands: what a checkpoint keeps to resume it."""

    offset: int = 0
    line: int = 0
    """Lines read so far (the next record starts on line + 1)."""
    header: list[str] | None = None
    validator: str | None = None
    """The input's version (an ETag), or a keyset position (for a resource's rows)."""


class RecordSplitter:
    """Bytes in, records out; `at` moves past each record as it is cut."""

    def __init__(self, fmt: Format, at: Position) -> None:
        self.format, self.at = fmt, at
        self._pending = bytearray()
        self._quotes = 0

    def feed(self, data: bytes) -> Iterator[Record]:
        """The records `data` completes, each as soon as it is cut (so however large `data`
        is, one record at a time is held); consume them before the next `feed`."""
        view = 0
        while (newline := data.find(b"\n", view)) >= 0:
            piece = data[view : newline + 1]
            view = newline + 1
            self._pending += piece
            if self.format == "csv":
                self._quotes += piece.count(b'"')
                if self._quotes % 2:
                    continue  # inside a quoted field: the record goes on
            if (record := self._cut()) is not None:
                yield record
        self._pending += data[view:]
        if len(self._pending) > MAX_RECORD:
            raise RecordTooLong(f"line {self.at.line + 1} is over {MAX_RECORD} bytes")

    def end(self) -> Iterator[Record]:
        """The last record, when the input does not end with a line break."""
        if self._pending.strip() and (record := self._cut(closing=True)) is not None:
            yield record

    def _cut(self, *, closing: bool = False) -> Record | None:
        raw, start = bytes(self._pending), self.at.offset
        record = self._record(raw, start)
        self.at.line += raw.count(b"\n") + (1 if closing else 0)
        self.at.offset = start + len(raw)
        self._pending.clear()
        self._quotes = 0
        return record

    def _record(self, raw: bytes, start: int) -> Record | None:
        line, end = self.at.line + 1, start + len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Record(line, end, None, f"not UTF-8 (byte {exc.start + 1} of the line)")
        if not text.strip():
            return None
        if self.format == "ndjson":
            return _json_record(text, line, end)
        fields = next(csv.reader([text.rstrip("\r\n")]), [])
        if self.at.header is None:
            self.at.header = fields
            return None
        if len(fields) != len(self.at.header):
            wanted = len(self.at.header)
            return Record(line, end, None, f"{len(fields)} fields where the header has {wanted}")
        values = {n: (v if v != "" else None) for n, v in zip(self.at.header, fields, strict=True)}
        return Record(line, end, values)


def _json_record(text: str, line: int, end: int) -> Record:
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Record(line, end, None, f"not JSON: {exc.msg}")
    if not isinstance(values, dict):
        return Record(line, end, None, "not a JSON object of column values")
    return Record(line, end, values)


# -- positions as JSON --------------------------------------------------------------------------

FROZEN: tuple[tuple[type | tuple[type, ...], str, Callable[[Any], str]], ...] = (
    (dt.datetime, "datetime", dt.datetime.isoformat), (dt.date, "date", dt.date.isoformat),
    (dt.time, "time", dt.time.isoformat), (Decimal, "decimal", str),
    ((bytes, bytearray, memoryview), "bytes", lambda v: base64.b64encode(bytes(v)).decode()),
)  # fmt: skip
"""Values JSON cannot carry as themselves, each as {tag: text} (datetime before date)."""
THAWED: dict[str, Callable[[str], Any]] = {
    "datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat, "decimal": Decimal, "bytes": base64.b64decode,
    "float": float,
}  # fmt: skip


def freeze(value: Any) -> Any:
    for kind, tag, as_text in FROZEN:
        if isinstance(value, kind):
            return {tag: as_text(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def thaw(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, text),) = value.items()
    return THAWED[tag](text)


def freeze_all(values: Sequence[Any]) -> list[Any]:
    return [freeze(v) for v in values]


def thaw_all(values: Sequence[Any]) -> list[Any]:
    return [thaw(v) for v in values]
