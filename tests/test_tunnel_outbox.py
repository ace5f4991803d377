# The tunnel's write coalescing over a local socket pair: flushes asked for in one event-loop
# turn become one write, body data goes out at once, and closing writes what was waiting.
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridgehead.common.tunnel.outbox import Outbox


class Pending:
    """Stands in for h2's send buffer: bytes queued until taken."""

    def __init__(self) -> None:
        self.data = bytearray()

    def take(self) -> bytes:
        out, self.data = bytes(self.data), bytearray()
        return out


@pytest.fixture
async def ends() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, list[bytes]]]:
    """A connected pair: the reader end, the writer end, and every write made on it."""
    left, right = socket.socketpair()
    reader, reader_end = await asyncio.open_connection(sock=left)
    _, writer = await asyncio.open_connection(sock=right)
    writes: list[bytes] = []
    original = writer.write

    def counted(data: Any) -> None:
        writes.append(bytes(data))
        original(data)

    writer.write = counted  # type: ignore[method-assign]
    yield reader, writer, writes
    for end in (writer, reader_end):
        end.close()
        await end.wait_closed()


async def test_flushes_in_one_turn_become_one_write(ends: Any) -> None:
    """Three flushes before the loop turns: one write carrying all three pieces."""
    reader, writer, writes = ends
    pending = Pending()
    outbox = Outbox(pending.take, writer)
    for piece in (b"a", b"b", b"c"):
        pending.data += piece
        await outbox.flush()
    assert writes == []  # nothing written yet: the write waits for the end of the turn
    await asyncio.sleep(0)
    assert writes == [b"abc"]
    assert await reader.readexactly(3) == b"abc"


async def test_body_data_is_written_at_once(ends: Any) -> None:
    """flush_now writes before it returns, each piece on its own."""
    _, writer, writes = ends
    pending = Pending()
    outbox = Outbox(pending.take, writer)
    for piece in (b"one", b"two"):
        pending.data += piece
        await outbox.flush_now()
    assert writes == [b"one", b"two"]


async def test_close_writes_what_was_waiting(ends: Any) -> None:
    """Bytes flushed just before close (a GOAWAY, say) still reach the peer."""
    reader, writer, _ = ends
    pending = Pending()
    outbox = Outbox(pending.take, writer)
    pending.data += b"goaway"
    await outbox.flush()
    outbox.close()
    assert await reader.read() == b"goaway"
