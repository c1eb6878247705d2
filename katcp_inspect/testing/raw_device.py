"""A hostile KATCP device written byte by byte, for tests and measuring scripts.

Unlike :class:`~katcp_inspect.testing.SimulatedDevice`, it knows no protocol beyond reading
request lines: each accepted connection runs a *script*, a coroutine that writes whatever bytes
it likes (see the factories below, or write your own). The device runs its own event loop in a
thread of its own, like a real device in another process: a client that hogs its own loop
cannot slow the device down, so a flood really is as fast as the socket allows.

>>> async with RawDevice(greet_then_drop()) as device:   # doctest: +SKIP
...     client = DeviceClient("127.0.0.1", device.port)
...     await device.wait_accepted(3)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType

from ..message import Message

__all__ = [
    "GREETING_V5",
    "RawDevice",
    "RawPeer",
    "Responder",
    "Script",
    "accept_then_close",
    "answering",
    "flood",
    "flood_process",
    "greet_then_drop",
    "scripted",
]

GREETING_V5 = b"#version-connect katcp-protocol 5.1-MIB\n"


class RawPeer:
    """One accepted connection, as the script sees it (on the device's loop)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the socket has taken it (raises once the peer is gone)."""
        self.writer.write(data)
        await self.writer.drain()

    async def read_request(self) -> Message | None:
        """The next request line from the client, parsed; ``None`` once it has closed."""
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            if line.strip():
                return Message.parse(line)

    async def hold(self) -> None:
        """Stay connected, discarding what the client sends, until it closes (or the device
        stops)."""
        while await self.reader.read(64 * 1024):
            pass

    def close(self) -> None:
        """Close with a FIN, after what was written."""
        self.writer.close()

    def reset(self) -> None:
        """Close with a RST: what was not yet sent is lost."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


#: What a device does with one connection; it ends when the script returns.
Script = Callable[[RawPeer], Awaitable[None]]
#: Lines to send back for a request (any iterable, even an endless generator).
Responder = Callable[[Message], Iterable[bytes]]


class RawDevice:
    """A listening socket on 127.0.0.1 (a free port) whose connections each run ``script``.

    Use it as ``async with RawDevice(script) as device``; :attr:`accepted` holds the monotonic
    time of every accepted connection. Leaving the block closes every connection and the thread.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = 0
        #: ``time.monotonic()`` of each accepted connection, in order.
        self.accepted: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the device's thread and listen; returns once :attr:`port` is known."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="raw-device", daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), loop)
        await asyncio.wrap_future(started)

    async def stop(self) -> None:
        """Close the listener and every connection, then end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(), loop))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()

    async def __aenter__(self) -> RawDevice:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def wait_accepted(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` connections have been accepted."""
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.accepted)} of {count} connections accepted")
            await asyncio.sleep(0.005)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await self.script(RawPeer(reader, writer))
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Scripts end by themselves once their socket is gone: asyncio's server reports a
        # cancelled handler as an error, so none is cancelled.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)


# ---------------------------------------------------------------------- scripts


def accept_then_close() -> Script:
    """Close each connection as soon as it is accepted (a port forwarder with nothing behind,
    a device at its client limit)."""
    async def script(peer: RawPeer) -> None:
        peer.close()
    return script


def greet_then_drop(greeting: bytes = GREETING_V5, *, after: float = 0.0) -> Script:
    """Greet, wait ``after`` seconds, then close."""
    async def script(peer: RawPeer) -> None:
        await peer.send(greeting)
        if after:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(peer.hold(), after)
        peer.close()
    return script


def flood(line: bytes, *, greeting: bytes = GREETING_V5, seconds: float | None = None,
          block: int = 1024 * 1024) -> Script:
    """Greet, then send ``line`` over and over as fast as the socket takes it, for ``seconds``
    (``None``: until the client goes), reading nothing: requests are never answered."""
    data = line * max(1, block // len(line))

    async def script(peer: RawPeer) -> None:
        await peer.send(greeting)
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            await peer.send(data)
        await peer.hold()
    return script


def scripted(*chunks: bytes, pause: float = 0.0) -> Script:
    """Send ``chunks`` one by one (``pause`` seconds apart), then stay connected in silence."""
    async def script(peer: RawPeer) -> None:
        for chunk in chunks:
            await peer.send(chunk)
            if pause:
                await asyncio.sleep(pause)
        await peer.hold()
    return script


def answering(respond: Responder, *, greeting: bytes = GREETING_V5) -> Script:
    """Greet, then answer each request with the lines ``respond(request)`` gives, sent as they
    come (so an endless generator is an endless answer). Lines are complete, with their own
    message ids and line ends."""
    async def script(peer: RawPeer) -> None:
        await peer.send(greeting)
        while True:
            request = await peer.read_request()
            if request is None:
                return
            for line in respond(request):
                await peer.send(line)
    return script



@contextlib.asynccontextmanager
async def flood_process(line: bytes, *, seconds: float | None = None,
                        greeting: bytes = GREETING_V5) -> AsyncIterator[int]:
    """A :func:`flood` device in a process of its own; gives its port.

    A device thread in the client's process shares the client's GIL and cannot outrun it; a
    real device (or this process) sends faster than a client can parse.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", __name__, line.hex(), greeting.hex(),
        "inf" if seconds is None else repr(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None  # asked for both
    try:
        yield int(await asyncio.wait_for(process.stdout.readline(), 30.0))
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def _serve_flood(line: bytes, greeting: bytes, seconds: float | None) -> None:
    """Flood every connection until standard input closes, telling the port on stdout."""
    async with RawDevice(flood(line, greeting=greeting, seconds=seconds)) as device:
        print(device.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    _seconds = float(sys.argv[3])
    asyncio.run(_serve_flood(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]),
                             None if math.isinf(_seconds) else _seconds))
