# The audit log as an auditor meets it: real files, one chained JSON line per record, in order,
# across restarts and rotations; any edited, removed, reordered or garbled line is named by
# `verify` and by `bridgehead audit verify`. File reads in async tests run in a worker thread
# (the blocking-call guard is on).
from __future__ import annotations

import asyncio
import io
import itertools
import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgehead.agent.audit import (
    ZERO_HASH,
    AuditError,
    AuditLog,
    AuditRecord,
    encode_line,
    line_hash,
    rotated,
    verify,
    verify_file,
)
from bridgehead.agent.audit_cli import verify_command

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rec(i: int, **changes: object) -> AuditRecord:
    fields: dict[str, object] = {
        "time": T0 + timedelta(seconds=i),
        "request_id": f"req-{i}",
        "principal": "crm",
        "target": "customers",
        "operation": "read",
        "rows": i,
        "status": 200,
        "duration_ms": 1.5,
        "via": "local",
    }
    fields.update(changes)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def chain(records: list[AuditRecord], prev: str = ZERO_HASH, seq: int = 0) -> list[bytes]:
    """Lines as the writer makes them, built without files."""
    lines = []
    for record in records:
        seq += 1
        line = encode_line(record, seq, prev)
        lines.append(line)
        prev = line_hash(line)
    return lines


def read_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n") or not data
    return data.splitlines()


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


async def lines_of(path: Path) -> list[bytes]:
    return await asyncio.to_thread(read_lines, path)


async def write_log(path: Path, records: list[AuditRecord], **options: int) -> AuditLog:
    log = AuditLog(path, **options)
    await log.start()
    for record in records:
        await log.record(record)
    await log.close()
    return log


# --- writing -------------------------------------------------------------------------------------


async def test_records_are_written_in_order_with_a_correct_chain(tmp_path: Path) -> None:
    """Each record becomes one canonical JSON line: its fields, seq 1, 2, ... and prev chaining
    each line to the exact bytes of the one before, starting from 64 zeros."""
    path = tmp_path / "state" / "audit.log"
    records = [rec(i) for i in range(20)]
    log = await write_log(path, records)
    lines = await lines_of(path)
    assert lines == chain(records)
    first = orjson.loads(lines[0])
    assert first == {
        "time": "2024-05-01T12:00:00Z",
        "request_id": "req-0",
        "principal": "crm",
        "target": "customers",
        "operation": "read",
        "rows": 0,
        "status": 200,
        "duration_ms": 1.5,
        "via": "local",
        "seq": 1,
        "prev": ZERO_HASH,
    }
    assert [orjson.loads(line)["request_id"] for line in lines] == [f"req-{i}" for i in range(20)]
    assert list(orjson.loads(lines[0])) == sorted(first)
    assert log.head == (20, line_hash(lines[-1]))
    assert verify(lines, ZERO_HASH).ok


def test_record_time_must_be_aware_and_is_stored_in_utc() -> None:
    """A naive time is refused; an aware one in another zone is stored as UTC with a Z."""
    with pytest.raises(ValueError, match="timezone-aware"):
        rec(0, time=datetime(2024, 5, 1, 12, 0))
    plus_two = timezone(timedelta(hours=2))
    line = encode_line(rec(0, time=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)), 1, ZERO_HASH)
    assert orjson.loads(line)["time"] == "2024-05-01T12:00:00Z"


def test_a_request_id_with_a_lone_surrogate_is_kept_escaped() -> None:
    """A value JSON cannot carry (a lone surrogate from a mis-decoded header) is written escaped
    rather than making the writer fail, and the line still verifies."""
    line = encode_line(rec(0, request_id="abc\udcff"), 1, ZERO_HASH)
    assert orjson.loads(line)["request_id"] == "abc\\udcff"
    assert verify([line], ZERO_HASH).ok


async def test_a_restart_resumes_the_chain(tmp_path: Path) -> None:
    """A new AuditLog on an existing file continues it: seq goes on and prev links to the last
    line the previous run wrote."""
    path = tmp_path / "audit.log"
    await write_log(path, [rec(i) for i in range(5)])
    log = await write_log(path, [rec(i) for i in range(5, 8)])
    lines = await lines_of(path)
    assert [orjson.loads(line)["seq"] for line in lines] == list(range(1, 9))
    assert orjson.loads(lines[5])["prev"] == line_hash(lines[4])
    assert lines == chain([rec(i) for i in range(8)])
    assert log.head == (8, line_hash(lines[-1]))


async def test_a_restart_finds_the_last_line_even_when_it_is_long(tmp_path: Path) -> None:
    """Resuming reads the file backwards until it has the whole last line, however long."""
    path = tmp_path / "audit.log"
    await write_log(path, [rec(0), rec(1, request_id="r" * 200_000)])
    await write_log(path, [rec(2)])
    lines = await lines_of(path)
    assert lines == chain([rec(0), rec(1, request_id="r" * 200_000), rec(2)])


async def test_a_restart_right_after_rotation_chains_to_the_rotated_file(tmp_path: Path) -> None:
    """With no current file (the agent stopped just after rotating), the chain resumes from the
    last line of audit.log.1."""
    path = tmp_path / "audit.log"
    await write_log(path, [rec(i) for i in range(3)])
    await asyncio.to_thread(path.rename, rotated(path, 1))
    await write_log(path, [rec(3)])
    old, new = await lines_of(rotated(path, 1)), await lines_of(path)
    assert orjson.loads(new[0])["seq"] == 4
    assert orjson.loads(new[0])["prev"] == line_hash(old[-1])


async def test_start_refuses_a_file_whose_last_line_was_cut_short(tmp_path: Path) -> None:
    """A last line without its newline (a torn write) stops start() with a sentence naming the
    file, instead of appending onto it and corrupting the next record."""
    path = tmp_path / "audit.log"
    lines = chain([rec(0), rec(1)])
    await asyncio.to_thread(path.write_bytes, lines[0] + b"\n" + lines[1][:30])
    with pytest.raises(AuditError, match=r"audit\.log: its last line was cut short"):
        await AuditLog(path).start()


async def test_rotation_keeps_the_chain_and_deletes_files_beyond_keep(tmp_path: Path) -> None:
    """Past max_bytes the file moves to audit.log.1 (older ones shift up); only `keep` rotated
    files remain; the first line of each file chains to the last line of the one before it."""
    path = tmp_path / "audit.log"
    await write_log(path, [rec(i) for i in range(60)], max_bytes=1000, keep=3)
    names = sorted(p.name for p in await asyncio.to_thread(lambda: list(tmp_path.iterdir())))
    assert names == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    files = [rotated(path, 3), rotated(path, 2), rotated(path, 1), path]
    contents = [await lines_of(p) for p in files]
    for older, newer in itertools.pairwise(contents):
        assert orjson.loads(newer[0])["prev"] == line_hash(older[-1])
    everything = [line for content in contents for line in content]
    seqs = [orjson.loads(line)["seq"] for line in everything]
    assert seqs == list(range(seqs[0], 61))
    assert seqs[0] > 1
    assert verify(everything).ok
    sizes = [(await asyncio.to_thread(p.stat)).st_size for p in files]
    assert all(0 < size <= 1000 for size in sizes)


async def test_files_are_created_owner_only(tmp_path: Path) -> None:
    """The current and rotated files are created with mode 0600."""
    path = tmp_path / "audit.log"
    await write_log(path, [rec(i) for i in range(10)], max_bytes=1000)
    for p in (path, rotated(path, 1)):
        mode = (await asyncio.to_thread(p.stat)).st_mode
        assert stat.S_IMODE(mode) == 0o600


async def test_close_flushes_every_queued_record(tmp_path: Path) -> None:
    """Records queued just before close() are all on disk when close() returns."""
    path = tmp_path / "audit.log"
    log = AuditLog(path, batch_size=50)
    await log.start()
    await asyncio.gather(*(log.record(rec(i)) for i in range(500)))
    await log.close()
    assert len(await lines_of(path)) == 500
    with pytest.raises(AuditError, match="not running"):
        await log.record(rec(500))


async def test_concurrent_records_keep_seq_contiguous(tmp_path: Path) -> None:
    """Many tasks recording at once (through a small queue) get seq 1..N with no gap or
    duplicate, and each task's records stay in the order it made them."""
    path = tmp_path / "audit.log"
    log = AuditLog(path, queue_size=16, batch_size=7)
    await log.start()

    async def caller(task: int) -> None:
        for j in range(25):
            await log.record(rec(j, request_id=f"{task}-{j}"))

    await asyncio.gather(*(caller(task) for task in range(40)))
    await log.close()
    entries = [orjson.loads(line) for line in await lines_of(path)]
    assert [e["seq"] for e in entries] == list(range(1, 1001))
    for task in range(40):
        mine = [e["request_id"] for e in entries if e["request_id"].startswith(f"{task}-")]
        assert mine == [f"{task}-{j}" for j in range(25)]
    assert (await asyncio.to_thread(verify_file, path)).ok


async def test_a_full_queue_makes_record_wait_instead_of_dropping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the writer is stuck and the queue is full, record() waits; once the writer moves
    on, every record is written."""
    path = tmp_path / "audit.log"
    log = AuditLog(path, queue_size=1)
    await log.start()
    entered, release = threading.Event(), threading.Event()
    append = log._file.append

    def stuck_append(batch: list[AuditRecord]) -> None:
        entered.set()
        release.wait(10)
        append(batch)

    monkeypatch.setattr(log._file, "append", stuck_append)
    await log.record(rec(0))
    assert await asyncio.to_thread(entered.wait, 10)
    await log.record(rec(1))  # fills the queue
    third = asyncio.create_task(log.record(rec(2)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not third.done()
    release.set()
    await third
    await log.close()
    assert await lines_of(path) == chain([rec(0), rec(1), rec(2)])


async def test_a_write_failure_refuses_later_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the disk write fails, the log says why and record() and close() raise AuditError, so
    the pipeline can refuse data access it cannot audit."""
    log = AuditLog(tmp_path / "audit.log")
    await log.start()

    def failing_append(batch: list[AuditRecord]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(log._file, "append", failing_append)
    await log.record(rec(0))
    for _ in range(100):
        if log.failure:
            break
        await asyncio.sleep(0.01)
    assert log.failure is not None
    assert "No space left" in log.failure
    with pytest.raises(AuditError, match="stopped writing"):
        await log.record(rec(1))
    with pytest.raises(AuditError, match="stopped writing"):
        await log.close()


# --- verifying -----------------------------------------------------------------------------------


def edit_principal(lines: list[bytes]) -> list[bytes]:
    lines[3] = lines[3].replace(b'"principal":"crm"', b'"principal":"crn"')
    return lines


def remove(lines: list[bytes]) -> list[bytes]:
    del lines[3]
    return lines


def swap(lines: list[bytes]) -> list[bytes]:
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def truncate(lines: list[bytes]) -> list[bytes]:
    lines[3] = lines[3][: len(lines[3]) // 2]
    return lines


def garble(lines: list[bytes]) -> list[bytes]:
    at = lines[3].index(b"crm")
    lines[3] = lines[3][:at] + b"\xff" + lines[3][at + 1 :]
    return lines


def change_seq(lines: list[bytes]) -> list[bytes]:
    lines[3] = lines[3].replace(b'"seq":4', b'"seq":14')
    return lines


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (edit_principal, "line 5: prev does not match the hash of line 4 (edited, removed or"),
        (remove, "line 4: prev does not match the hash of line 3"),
        (swap, "line 4: prev does not match the hash of line 3"),
        (truncate, "line 4: it is not valid JSON (truncated or garbled line)"),
        (garble, "line 4: it is not valid JSON"),
        (change_seq, "line 4: seq is 14 but should be 4"),
    ],
)
def test_verify_names_the_first_bad_line(tmp_path: Path, tamper: object, expected: str) -> None:
    """An edited value, a removed line, two swapped lines, a truncated or garbled line and a
    changed seq are each reported at the right line with a one-sentence reason."""
    path = tmp_path / "audit.log"
    lines = chain([rec(i) for i in range(10)])
    assert callable(tamper)
    tampered = tamper(list(lines))
    assert tampered != lines
    write_lines(path, tampered)
    result = verify_file(path)
    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith(expected)
    assert result.line == int(expected.split()[1].rstrip(":"))


def test_verify_file_accepts_a_first_line_chained_to_an_older_file(tmp_path: Path) -> None:
    """A rotated file's first line chains to a file that may be gone: verify_file accepts any
    prev there but checks the rest, while verify() from the chain start refuses it."""
    lines = chain([rec(i) for i in range(10)])
    path = tmp_path / "audit.log.1"
    write_lines(path, lines[4:])
    result = verify_file(path)
    assert result.ok
    assert (result.records, result.last_seq, result.last_hash) == (6, 10, line_hash(lines[-1]))
    refused = verify(lines[4:], ZERO_HASH)
    assert refused.line == 1
    assert refused.reason is not None
    assert "expected chain start" in refused.reason
    assert verify(lines[4:], line_hash(lines[3])).ok


def test_verify_file_reports_a_last_line_without_newline(tmp_path: Path) -> None:
    """A final line missing its newline is reported as a write cut short."""
    path = tmp_path / "audit.log"
    lines = chain([rec(i) for i in range(3)])
    path.write_bytes(b"\n".join(lines))
    result = verify_file(path)
    assert result.line == 3
    assert result.reason == "line 3: it does not end with a newline (a write was cut short)"


def test_verify_an_empty_log_is_intact() -> None:
    """No lines is an intact (empty) chain."""
    assert verify([]).ok
    assert verify([], ZERO_HASH).last_hash == ZERO_HASH


OPERATIONS = ["read", "list", "insert", "update", "delete", "query", "procedure", "stream"]
records_strategy = st.builds(
    AuditRecord,
    time=st.datetimes(timezones=st.just(UTC)),
    request_id=st.text(max_size=12),
    principal=st.text(max_size=12),
    target=st.text(max_size=12),
    operation=st.sampled_from(OPERATIONS),
    rows=st.integers(0, 10**12),
    status=st.sampled_from([200, 201, 204, 400, 403, 404, 409, 500, 503]),
    duration_ms=st.floats(0, 1e6, allow_nan=False),
    via=st.sampled_from(["local", "relay"]),
)


def edit_field(line: bytes, field: str, position: int) -> bytes:
    entry = orjson.loads(line)
    value = entry[field]
    if isinstance(value, int):
        entry[field] = value + 1
    elif not value:
        entry[field] = "x"
    else:
        at = position % len(value)
        entry[field] = value[:at] + ("x" if value[at] != "x" else "y") + value[at + 1 :]
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


@given(
    records=st.lists(records_strategy, min_size=1, max_size=15),
    kind=st.sampled_from(["edit", "remove", "swap"]),
    index=st.integers(0, 100),
    field=st.sampled_from(["request_id", "principal", "target", "rows", "status"]),
    position=st.integers(0, 100),
)
def test_verify_catches_any_single_edit_removal_or_swap(
    records: list[AuditRecord], kind: str, index: int, field: str, position: int
) -> None:
    """The untouched chain verifies. One edited or removed line is caught at the line after it
    was, a swap at the first swapped line; an edited or removed last line leaves the chain
    intact but changes last_hash, which is what an anchor kept elsewhere catches."""
    lines = chain(records)
    intact = verify(lines, ZERO_HASH)
    assert intact.ok
    assert (intact.records, intact.last_hash) == (len(lines), line_hash(lines[-1]))
    last = len(lines) - 1
    tampered = list(lines)
    if kind == "swap" and last >= 1:
        i = index % last
        tampered[i], tampered[i + 1] = tampered[i + 1], tampered[i]
        expected_line: int | None = i + 1
    elif kind == "edit":
        i = index % len(lines)
        tampered[i] = edit_field(tampered[i], field, position)
        expected_line = i + 2 if i < last else None
    else:
        i = index % len(lines)
        del tampered[i]
        expected_line = i + 1 if i < last else None
    result = verify(tampered, ZERO_HASH)
    assert result.line == expected_line, result.reason
    if expected_line is None:
        assert result.last_hash != intact.last_hash


# --- bridgehead audit verify ---------------------------------------------------------------------


def test_verify_command_reports_an_intact_chain(tmp_path: Path) -> None:
    """Exit 0 and "FILE: N records, chain intact" on stdout when the chain holds."""
    path = tmp_path / "audit.log"
    write_lines(path, chain([rec(i) for i in range(7)]))
    out, err = io.StringIO(), io.StringIO()
    assert verify_command(path, out, err) == 0
    assert out.getvalue() == f"{path}: 7 records, chain intact\n"
    assert err.getvalue() == ""


def test_verify_command_names_the_first_bad_line(tmp_path: Path) -> None:
    """Exit 1 and one sentence on stderr naming the first bad line when the chain is broken."""
    path = tmp_path / "audit.log"
    write_lines(path, swap(chain([rec(i) for i in range(7)])))
    out, err = io.StringIO(), io.StringIO()
    assert verify_command(path, out, err) == 1
    assert out.getvalue() == ""
    message = err.getvalue()
    assert message.count("\n") == 1
    assert f"{path}: line 4: prev does not match the hash of line 3" in message


@pytest.mark.parametrize("name", ["missing.log", "."])
def test_verify_command_exits_2_when_the_file_cannot_be_read(tmp_path: Path, name: str) -> None:
    """Exit 2 and one sentence saying the file cannot be read (missing, or a directory)."""
    path = tmp_path / name
    out, err = io.StringIO(), io.StringIO()
    assert verify_command(path, out, err) == 2
    message = err.getvalue()
    assert message.startswith(f"bridgehead: cannot read {path} (")
    assert message.count("\n") == 1
    assert "Traceback" not in message


async def test_records_arriving_together_share_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit: records queued within `flush_interval` of a batch's first are written
    (and fsynced) with it, so a busy agent syncs a few times a second, not once a request."""
    log = AuditLog(tmp_path / "audit.log", flush_interval=0.05)
    await log.start()
    writes = 0
    append = log._file.append

    def counted(lines: list[tuple[bytes, str]]) -> None:
        nonlocal writes
        writes += 1
        append(lines)

    monkeypatch.setattr(log._file, "append", counted)
    for i in range(100):
        await log.record(rec(i))
        await asyncio.sleep(0.001)
    await log.close()
    assert len(await lines_of(tmp_path / "audit.log")) == 100
    assert writes <= 10  # about 100 ms of records in 50 ms groups; one write each without
