"""The connection layer: batched writes, chunked reads, over-long lines, closure reasons."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tornado.iostream import IOStream

from katcp_inspect.connection import Connection, ParsedItem, is_line_too_long
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
