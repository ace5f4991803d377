"""The tamper-evident audit log: one JSON line per data access, each chained to the line before.

Every line is canonical JSON (sorted keys) holding the record's fields plus `seq` (one more than
the line before, continuing across rotations) and `prev` (hex SHA-256 of the previous line's exact
bytes without its newline; 64 zeros on the first line ever). An edited, removed or reordered line
therefore breaks the chain at a line `verify` can name.

Rules: the event loop never touches the file. `record` only queues; one background task takes
batches in order and encodes them, and a worker thread appends, fsyncs and rotates. A full
queue makes `record` wait; nothing is dropped. Files are created 0600. A restart resumes the
chain from the file's last line. The chain alone cannot show that the newest lines were cut off
or the last line rewritten: compare `AuditLog.head` (or `verify`'s `last_hash`) with a copy
kept elsewhere for that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from bridgehead.common.files import fsync_folder

ZERO_HASH = "0" * 64
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z
_HASH = re.compile(r"[0-9a-f]{64}")

logger = logging.getLogger(__name__)


class AuditError(Exception):
    """The audit log cannot take records: not started, closed, failed, or its file is damaged."""


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One data access. `target` is a resource, `queries:<name>` or `procedures:<name>`;
    `operation` one of read, list, insert, update, delete, query, procedure, stream, or a
    job run's export or import; `via` is "local", "relay" or "job" (then `principal` is
    `job:<name>` and `request_id` `job:<name>/<run>`). `time` must be timezone-aware; it is
    stored in UTC."""

    time: datetime
    request_id: str
    principal: str
    target: str
    operation: str
    rows: int
    status: int
    duration_ms: float
    via: str

    def __post_init__(self) -> None:
        if self.time.utcoffset() is None:
            raise ValueError("AuditRecord.time must be timezone-aware (use datetime.now(UTC))")
        if self.time.tzinfo is not UTC:
            object.__setattr__(self, "time", self.time.astimezone(UTC))


# --- the line format and the chain (pure) -------------------------------------------------------


def encode_line(rec: AuditRecord, seq: int, prev: str) -> bytes:
    """The canonical JSON line (without newline) for `rec` at position `seq` after hash `prev`."""
    fields: dict[str, Any] = dict(vars(rec))
    fields.update(seq=seq, prev=prev)
    try:
        return orjson.dumps(fields, option=_OPTIONS)
    except orjson.JSONEncodeError:  # e.g. a lone surrogate from a header: keep it, escaped
        return orjson.dumps({k: _escaped(v) for k, v in fields.items()}, option=_OPTIONS)


def _escaped(value: object) -> object:
    return value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) else value


def line_hash(line: bytes) -> str:
    """What the next line's `prev` must be: hex SHA-256 of `line` (without its newline)."""
    return hashlib.sha256(line).hexdigest()


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """`line` and `reason` name the first bad line (1-based), or are None when the chain holds.
    `records` counts the lines that verified; `last_seq`/`last_hash` describe the last of them
    (compare `last_hash` with a copy kept elsewhere to detect a cut-off or rewritten tail)."""

    records: int
    last_seq: int | None
    last_hash: str | None
    line: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.line is None


_TEXT = ("time", "request_id", "principal", "target", "operation", "via", "prev")
_SCHEMA: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(_TEXT, (str,)),
    **dict.fromkeys(("rows", "status", "seq"), (int,)),
    "duration_ms": (int, float),
}


def verify(lines: Iterable[bytes], start_prev: str | None = None) -> VerifyResult:
    """Check a chain of lines (each without its newline). `start_prev` is what the first line's
    `prev` must be: `ZERO_HASH` from the chain's start, the older file's last hash for a rotated
    file; None accepts any `prev` on the first line only. `prev` is 64 zeros exactly when seq is 1.
    """
    if start_prev is not None and not _HASH.fullmatch(start_prev):
        raise ValueError("start_prev must be 64 lowercase hex digits")
    prev, seq, count = start_prev, None, 0
    for number, line in enumerate(lines, 1):
        checked = _check_line(number, line, prev, seq)
        if isinstance(checked, str):
            return VerifyResult(count, seq, prev, number, f"line {number}: {checked}")
        prev, seq, count = line_hash(line), checked, count + 1
    return VerifyResult(count, seq, prev)


def _check_line(number: int, line: bytes, prev: str | None, seq: int | None) -> int | str:
    """The line's seq when it continues the chain, else what is wrong with it."""
    entry = _parse(line)
    if isinstance(entry, str):
        return entry
    if prev is not None and entry["prev"] != prev:
        after = f"the hash of line {number - 1}" if number > 1 else "the expected chain start"
        return f"prev does not match {after} (edited, removed or reordered line)"
    if seq is not None and entry["seq"] != seq + 1:
        return f"seq is {entry['seq']} but should be {seq + 1} (removed or reordered line)"
    if (entry["prev"] == ZERO_HASH) != (entry["seq"] == 1):
        return "prev is 64 zeros on a line other than seq 1 or not on seq 1 (edited line)"
    return int(entry["seq"])


def _parse(line: bytes) -> dict[str, Any] | str:
    """The line as a record with the expected fields and types, else what is wrong with it."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "it is not valid JSON (truncated or garbled line)"
    if not isinstance(entry, dict):
        return "it is not a JSON object (garbled line)"
    for name, kinds in _SCHEMA.items():
        value = entry.get(name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            return f"field {name!r} is missing or has the wrong type (edited or garbled line)"
    if entry["seq"] < 1 or not _HASH.fullmatch(entry["prev"]):
        return "seq or prev is malformed (edited or garbled line)"
    return entry


def verify_file(path: Path) -> VerifyResult:
    """Check one file, current or rotated (blocking; OSError if it cannot be read). A rotated
    file's first line chains to an older file that may be gone, so any `prev` is accepted on the
    first line; `seq` and `prev` are checked from there on. A last line without newline is bad."""
    with open(path, "rb") as file:
        torn: list[int] = []
        result = verify(_file_lines(file, torn))
    if result.ok and torn:
        reason = f"line {torn[0]}: it does not end with a newline (a write was cut short)"
        return VerifyResult(result.records - 1, None, None, torn[0], reason)
    return result


def _file_lines(file: BinaryIO, torn: list[int]) -> Iterator[bytes]:
    """The file's lines without newlines; appends the last line's number to `torn` if cut."""
    for number, line in enumerate(file, 1):
        if not line.endswith(b"\n"):
            torn.append(number)
            yield line
        else:
            yield line[:-1]


# --- the file: blocking, used only from the writer's worker thread -------------------------------


def rotated(path: Path, n: int) -> Path:
    """The n-th rotated file: audit.log.1 is the newest."""
    return path.with_name(f"{path.name}.{n}")


def _last_line(path: Path) -> bytes | None:
    """The file's last line without its newline; None if the file is missing or empty."""
    try:
        with open(path, "rb") as file:
            tail = _tail(file)
    except FileNotFoundError:
        return None
    if tail and not tail.endswith(b"\n"):
        raise AuditError(_damaged(path, "its last line was cut short"))
    return tail[:-1].rsplit(b"\n", 1)[-1] if tail else None


def _tail(file: BinaryIO) -> bytes:
    """Enough of the file's end to hold its whole last line."""
    pos, tail = file.seek(0, os.SEEK_END), b""
    while pos > 0 and b"\n" not in tail[:-1]:
        step = min(64 * 1024, pos)
        pos -= step
        file.seek(pos)
        tail = file.read(step) + tail
    return tail


def _damaged(path: Path, what: str) -> str:
    return (
        f"{path}: {what}; run `bridgehead audit verify {path}`, keep the file as evidence "
        "and move it aside so the agent starts a new chain"
    )


class _AuditFile:
    """Appends chained lines to the log, fsyncs each batch, rotates by size."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self.seq, self.prev = 0, ZERO_HASH
        self._fd: int | None = None
        self._size = 0

    def open(self) -> None:
        """Resume the chain from the newest line on disk, then open the file for appending."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        newest = self.path
        last = _last_line(newest)
        if last is None:
            newest = rotated(self.path, 1)
            last = _last_line(newest)
        if last is not None:
            self.seq, self.prev = _resume_point(newest, last)
        self._open_fd()

    def _open_fd(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        self._fd = os.open(self.path, flags, 0o600)
        self._size = os.fstat(self._fd).st_size

    def encode(self, records: list[AuditRecord]) -> list[tuple[bytes, str]]:
        """Each record's line and its hash, chained on from the last line written. Pure CPU,
        so it runs on the event loop: the writer thread then holds the GIL only briefly."""
        lines = []
        prev = self.prev
        for seq, rec in enumerate(records, self.seq + 1):
            line = encode_line(rec, seq, prev)
            prev = line_hash(line)
            lines.append((line, prev))
        return lines

    def append(self, lines: list[tuple[bytes, str]]) -> None:
        """Write encoded lines (`encode`), rotating past `max_bytes`, and fsync."""
        buffer = bytearray()
        for line, digest in lines:
            full = self._size + len(buffer) + len(line) + 1 > self.max_bytes
            if full and self._size + len(buffer) > 0:
                self._write(buffer)
                buffer.clear()
                self._rotate()
            buffer += line + b"\n"
            self.seq, self.prev = self.seq + 1, digest
        self._write(buffer)

    def _write(self, data: bytearray) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self._size += len(data)

    def _rotate(self) -> None:
        self.close()
        for n in sorted(_rotated_numbers(self.path), reverse=True):
            if n >= self.keep:
                rotated(self.path, n).unlink()
            else:
                os.replace(rotated(self.path, n), rotated(self.path, n + 1))
        os.replace(self.path, rotated(self.path, 1))
        fsync_folder(self.path.parent)
        self._open_fd()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _resume_point(path: Path, last: bytes) -> tuple[int, str]:
    entry = _parse(last)
    if isinstance(entry, str):
        raise AuditError(_damaged(path, "its last line is not an audit record"))
    seq: int = entry["seq"]
    return seq, line_hash(last)


def _rotated_numbers(path: Path) -> list[int]:
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    names = (pattern.fullmatch(p.name) for p in path.parent.iterdir())
    return [int(m.group(1)) for m in names if m]


# --- the async front ------------------------------------------------------------------------------


class AuditLog:
    """The agent's audit log: `await start()`, `await record(rec)` per data access, `await close()`.

    `record` returns once the record is queued (waiting while `queue_size` records are pending);
    a single task writes them in order, in batches of up to `batch_size`, each fsynced. A batch
    gathers for up to `flush_interval` seconds after its first record (a group commit: under
    load one fsync and one thread hand-off serve many requests, not one each; a record is no
    less durable, since it was only ever queued when its request was answered). The file
    rotates past `max_bytes` to `<path>.1` ... `<path>.<keep>`; older files are deleted.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        keep: int = 10,
        queue_size: int = 10_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.01,
    ) -> None:
        if max_bytes < 1 or keep < 1 or queue_size < 1 or batch_size < 1:
            raise ValueError("max_bytes, keep, queue_size and batch_size must be positive")
        if flush_interval < 0:
            raise ValueError("flush_interval must not be negative")
        self._flush_interval = flush_interval
        self._file = _AuditFile(Path(path), max_bytes, keep)
        self._queue_size, self._batch_size = queue_size, batch_size
        self._queue: asyncio.Queue[AuditRecord | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: str | None = None
        self.written = 0  # records written and synced since start
        self.failures = 0  # batches that failed to write (the first stops the log)

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last line written: an anchor to keep outside the log."""
        return self._file.seq, self._file.prev

    @property
    def failure(self) -> str | None:
        """Why the log stopped writing, if it did (for readiness)."""
        return self._failure

    async def start(self) -> None:
        """Resume the chain from the file (raises AuditError if its tail is damaged)."""
        if self._task is not None:
            raise AuditError("the audit log is already started")
        await asyncio.to_thread(self._file.open)
        self._queue = asyncio.Queue(self._queue_size)
        self._task = asyncio.create_task(self._drain(), name="audit-writer")

    async def record(self, rec: AuditRecord) -> None:
        """Queue `rec` for writing; raises AuditError if the log is not running or has failed."""
        if self._queue is None or self._closing:
            raise AuditError("the audit log is not running")
        self._raise_if_failed()
        await self._queue.put(rec)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise AuditError(f"the audit log stopped writing: {self._failure}")

    async def close(self) -> None:
        """Write everything queued, stop the writer and close the file."""
        if self._queue is None or self._task is None or self._closing:
            return
        self._closing = True
        await self._queue.put(None)  # None tells the writer to finish
        try:
            await self._task
        finally:
            await asyncio.to_thread(self._file.close)
        self._raise_if_failed()

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            if first is not None and self._flush_interval and not self._closing:
                await asyncio.sleep(self._flush_interval)  # let the batch gather
            batch, stop = self._take_batch(first)
            if batch and self._failure is None:
                await self._write(batch)
            if stop:
                return

    def _take_batch(self, first: AuditRecord | None) -> tuple[list[AuditRecord], bool]:
        assert self._queue is not None
        batch: list[AuditRecord] = []
        item = first
        while item is not None:
            batch.append(item)
            if len(batch) >= self._batch_size or self._queue.empty():
                return batch, False
            item = self._queue.get_nowait()
        return batch, True

    async def _write(self, batch: list[AuditRecord]) -> None:
        try:
            await asyncio.to_thread(self._file.append, self._file.encode(batch))
        except Exception as exc:  # any failure stops the log; later records are refused
            self.failures += 1
            self._failure = f"{type(exc).__name__}: {exc}"
            logger.exception("audit log %s stopped writing", self._file.path)
        else:
            self.written += len(batch)
