"""What the simulated device and the fault proxy share as TCP servers: a listener that hands
each accepted stream to a callback, closing a stream with a TCP RST, the lines they send on
purpose to misbehave (garbage, over-long lines), and the tasks a server ends before it stops.

May import the library; nothing else of the testing toolkit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.iostream import IOStream
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

from ..waiting import drain

#: A line no KATCP message starts with.
GARBAGE_LINE = b"this is not a KATCP message\n"

Accept = Callable[[IOStream, Any], None]


class StreamListener(TCPServer):
    """A listening server that hands every accepted stream, and the peer's address, to
    ``accept``."""

    def __init__(self, accept: Accept) -> None:
        super().__init__()
        self._accept = accept

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        self._accept(stream, address)


def listen(accept: Accept, host: str, port: int) -> tuple[StreamListener, int]:
    """Listen on ``host:port`` (port 0: a free one); returns the listener and its port."""
    sockets = bind_sockets(port, host or None)
    listener = StreamListener(accept)
    listener.add_sockets(sockets)
    return listener, int(sockets[0].getsockname()[1])


def reset_on_close(stream: IOStream) -> None:
    """Make the closing of ``stream`` send a TCP RST rather than a FIN (unsent data is lost)."""
    if stream.socket is not None:
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))


def garbage_line(data: bytes = GARBAGE_LINE) -> bytes:
    """``data`` (a line that is not KATCP, by default) with a line ending if it has none."""
    return data if data.endswith((b"\n", b"\r")) else data + b"\n"


def long_line(size: int, name: bytes = b"long-line") -> bytes:
    """An inform ``#name xxx...`` of more than ``size`` bytes, with its line ending."""
    prefix = b"#" + name + b" "
    return prefix + b"x" * max(1, size + 1 - len(prefix)) + b"\n"


class Tasks:
    """The tasks a server started; each leaves the set when it ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        """Cancel every task but the caller's own (a task may stop the server it belongs to)."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def wait(self) -> None:
        """Wait until every task but the caller's own has ended, including tasks started
        meanwhile."""
        current = asyncio.current_task()
        while True:
            others = {task for task in self._tasks if task is not current and not task.done()}
            if not others:
                return
            await drain(others)

    def __len__(self) -> int:
        """How many tasks have not ended (for tests and leak checks). A task that has ended
        may still be in the set until its done-callback runs, which the loop does later."""
        return sum(1 for task in self._tasks if not task.done())
