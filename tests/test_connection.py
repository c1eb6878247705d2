"""The connection layer: batched writes, chunked reads, over-long lines, closure reasons."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from tornado.iostream import IOStream

from katcp_inspect.connection import (
    READ_CHUNK,
    READ_MIN,
    WRITE_AT_ONCE,
    Connection,
    ParsedItem,
    is_line_too_long,
)
from katcp_inspect.errors import ConnectionLostError, LineTooLongError

from .support import wait_until


async def pair(**kwargs: Any) -> tuple[Connection, socket.socket, list[ParsedItem],
                                       asyncio.Future[BaseException]]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    items: list[ParsedItem] = []
    closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    connection = Connection(IOStream(ours), max_line_length=kwargs.get("limit", 1000),
                            on_items=items.extend, on_closed=closed.set_result)
    connection.start()
    return connection, theirs, items, closed


async def test_writes_in_one_loop_iteration_go_out_together(io_loop: Any) -> None:
    connection, theirs, _, closed = await pair()
    writes: list[bytes] = []
    original = connection.stream.write

    def counting_write(data: bytes) -> Any:
        writes.append(data)
        return original(data)

    connection.stream.write = counting_write  # type: ignore[method-assign]
    for i in range(100):
        connection.send(b"?watchdog[%d]\n" % (i + 1))
    assert writes == []  # nothing yet: the flush is one loop iteration away
    await wait_until(lambda: writes)
    assert len(writes) == 1 and writes[0].count(b"\n") == 100
    connection.close(ConnectionLostError("test"))
    assert isinstance(await closed, ConnectionLostError)
    theirs.close()


async def test_what_reaches_write_at_once_bytes_goes_out_before_the_turn_ends(
        io_loop: Any) -> None:
    connection, theirs, _, closed = await pair()
    lines = [b"?watchdog[1]\n"]
    while sum(map(len, lines)) < WRITE_AT_ONCE:
        lines.append(b"?sensor-sampling[%d] %s event\n" % (len(lines) + 1, b"s" * 100))
    for line in lines:
        connection.send(line)
    # No await: the bytes are on the socket already, in the order sent.
    assert theirs.recv(2 * WRITE_AT_ONCE) == b"".join(lines)
    connection.send(b"?watchdog[%d]\n" % (len(lines) + 1))  # a small one waits for the turn
    with pytest.raises(BlockingIOError):
        theirs.recv(100)
    await wait_until(lambda: _readable(theirs))
    assert theirs.recv(100) == b"?watchdog[%d]\n" % (len(lines) + 1)
    connection.close(ConnectionLostError("test"))
    assert isinstance(await closed, ConnectionLostError)
    theirs.close()


def _readable(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False


async def test_lines_split_anywhere_are_parsed_and_bad_ones_are_items(io_loop: Any) -> None:
    _, theirs, items, closed = await pair()
    data = b"#a 1\n#bad\\q\n!b[2] ok\n"
    for i in range(len(data)):
        theirs.send(data[i:i + 1])
        await asyncio.sleep(0)
    await wait_until(lambda: len(items) == 3)
    assert [type(i).__name__ for i in items] == ["Message", "ValueError", "Message"]
    theirs.close()
    reason = await closed
    assert isinstance(reason, ConnectionLostError) and "closed by the device" in str(reason)


async def test_a_line_too_long_closes_before_its_end(io_loop: Any) -> None:
    _, theirs, _, closed = await pair(limit=100)
    theirs.send(b"#x " + b"y" * 500)
    assert isinstance(await asyncio.wait_for(closed, 1), LineTooLongError)
    theirs.close()


async def test_a_whole_line_too_long_is_reported_as_such(io_loop: Any) -> None:
    connection, theirs, items, closed = await pair(limit=100)
    theirs.send(b"#x " + b"y" * 50 + b"\n")  # fits
    await wait_until(lambda: len(items) == 1)
    theirs.send(b"#x " + b"y" * 500 + b"\n#after 1\n")
    await wait_until(lambda: len(items) == 3)
    assert is_line_too_long(items[1])  # type: ignore[arg-type]
    assert not isinstance(items[2], ValueError)
    connection.close(ConnectionLostError("done"))
    await closed
    theirs.close()


async def test_the_read_buffer_grows_under_a_flood_and_shrinks_back_when_idle(
        io_loop: Any) -> None:
    connection, theirs, items, closed = await pair()
    asked: list[int] = []
    original = connection.stream.read_into

    def spy(buffer: bytearray, partial: bool = False) -> Any:
        asked.append(len(buffer))
        return original(buffer, partial=partial)

    connection.stream.read_into = spy  # type: ignore[method-assign]
    lines = 40_000
    await asyncio.get_running_loop().sock_sendall(theirs, b"#x 1\n" * lines)
    await wait_until(lambda: len(items) == lines, what="the flood")
    assert max(asked) == READ_CHUNK  # a flood is read in the largest slices
    theirs.send(b"#y 1\n")
    await wait_until(lambda: len(items) == lines + 1, what="one more line")
    await asyncio.sleep(0.01)  # the read loop is waiting again
    # An idle connection waits with the smallest buffer: a fleet has a thousand of them.
    assert asked[-1] == READ_MIN
    connection.close(ConnectionLostError("done"))
    await closed
    theirs.close()


async def test_nothing_parsed_outlives_its_chunk_while_the_read_loop_waits(
        io_loop: Any) -> None:
    connection, theirs, items, closed = await pair()
    theirs.send(b"#x 1\n" * 100)
    await wait_until(lambda: len(items) == 100, what="the lines")
    await asyncio.sleep(0.01)  # the read loop is waiting for more
    task = connection._read_task
    assert task is not None
    frames = []
    coroutine: Any = task.get_coro()  # the read loop, then the pump it awaits
    while hasattr(coroutine, "cr_frame"):
        frames.append(coroutine.cr_frame)
        coroutine = coroutine.cr_await
    assert len(frames) == 2
    held = [value for frame in frames
            for value in frame.f_locals.values() if isinstance(value, list)]
    assert held == []  # a chunk is a thousand messages: they must not wait with the loop
    connection.close(ConnectionLostError("done"))
    await closed
    theirs.close()
