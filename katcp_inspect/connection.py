"""One TCP stream to a device: chunked reads into katcp-codec's parser, batched writes.

The connection knows bytes and lines, not the protocol: it hands every parsed item (a
message from katcp-codec or a ``ValueError`` for a malformed line) to its owner, one list per chunk
read, and tells the owner once, at the very end, that the stream is gone and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import cast

import attrs
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError

from . import codec
from .codec import ParsedItem
from .errors import ConnectionLostError, LineTooLongError
from .waiting import start_task

logger = logging.getLogger("katcp_inspect.connection")

#: The most bytes asked for per read: large enough that a flood of short lines costs one
#: wake-up per thousand lines, small enough that parsing one read takes a few milliseconds.
READ_CHUNK = 64 * 1024
#: Bytes asked for by a read that follows one which emptied the socket: such a read most
#: likely waits, holding its buffer meanwhile, and a fleet has a thousand idle connections.
READ_MIN = 4 * 1024
#: How much larger the next read is after one that filled its buffer (more is waiting).
READ_GROWTH = 4
#: Bytes queued for sending at which they go out at once, not at the end of the event-loop
#: iteration: a caller that makes many requests in one go (ten thousand per-sensor strategy
#: calls, a bulk ``?sensor-sampling`` of 500 names every 500 calls) has the first on the wire,
#: and the device at work on it, while it makes the rest.
WRITE_AT_ONCE = 4 * 1024

#: Seconds of reading after which the read loop lets the event loop run. Tornado completes a
#: read inline while data is waiting, so a device that sends faster than we parse would
#: otherwise hold the loop for as long as it sends. Time (not bytes) is what timers care about,
#: and the cost of a read varies tenfold with what the hooks do. A timer waits for about two
#: such slices of every flooding connection; one extra loop iteration (~20 us) per 2 ms of
#: parsing costs about 1 % of throughput, within the benchmark's noise.
YIELD_INTERVAL = 0.002


@attrs.frozen
class Keepalive:
    """TCP keepalive settings: a silent peer is declared dead after about
    ``idle + interval * count`` seconds by the operating system."""

    idle: float = 60.0
    interval: float = 10.0
    count: int = 6

    def apply(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # The fine-grained options are platform-specific; where absent the OS defaults apply.
        for name, value in (("TCP_KEEPIDLE", self.idle), ("TCP_KEEPINTVL", self.interval),
                            ("TCP_KEEPCNT", self.count)):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))


def next_read_size(size: int, got: int) -> int:
    """Bytes to ask for after a read of ``size`` bytes that got ``got``: more after a full
    read (a flood is waiting), the least after one that emptied the socket (an idle
    connection waits with a small buffer)."""
    if got >= size:
        return min(size * READ_GROWTH, READ_CHUNK)
    return READ_MIN


def is_line_too_long(error: ValueError) -> bool:
    """Whether a parse error item is katcp-codec's report of an over-long line."""
    return str(error).startswith('"Line too long"')


class Connection:
    """Pumps bytes from a connected :class:`IOStream` into the parser and owner.

    ``on_items`` receives the items parsed from each chunk; ``on_closed`` is called exactly once,
    after the stream is closed and the read loop has ended, with the reason (never ``None``).
    A line longer than ``max_line_length`` closes the connection with :class:`LineTooLongError`
    as soon as it is known to be too long, without waiting for its end; with
    ``close_on_long_line=False`` (a server that answers such a line rather than hanging up) it
    becomes a ``ValueError`` item at its end instead, the parser keeping only
    ``max_line_length`` bytes of it meanwhile.
    """

    def __init__(self, stream: IOStream, *, max_line_length: int,
                 on_items: Callable[[list[ParsedItem]], None],
                 on_closed: Callable[[BaseException], None],
                 close_on_long_line: bool = True) -> None:
        self.stream = stream
        self.max_line_length = max_line_length
        self.close_on_long_line = close_on_long_line
        self._on_items = on_items
        self._on_closed = on_closed
        self._parser = codec.Parser(max_line_length)
        self._pending_writes: list[bytes] = []
        self._pending_size = 0
        self._flush_handle: asyncio.Handle | None = None
        self._close_reason: BaseException | None = None
        self._read_task: asyncio.Future[None] | None = None
        #: Bytes the next read asks for (see :func:`next_read_size`).
        self.read_size = READ_MIN

    def start(self) -> asyncio.Future[None]:
        """Start reading; the returned task ends once the connection is closed and reported."""
        self._read_task = start_task(self._read_loop())
        return self._read_task

    @property
    def closing(self) -> bool:
        return self.stream.closed() or self._close_reason is not None

    def send(self, data: bytes) -> None:
        """Queue ``data``; what is queued in one event-loop iteration goes out in one write,
        or as soon as it reaches :data:`WRITE_AT_ONCE` bytes."""
        if self.closing:
            return
        self._pending_writes.append(data)
        self._pending_size += len(data)
        if self._pending_size >= WRITE_AT_ONCE:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _take_pending(self) -> bytes:
        """What is queued, taken from the queue (a scheduled write of it cancelled)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        data = b"".join(self._pending_writes)
        self._pending_writes.clear()
        self._pending_size = 0
        return data

    def _flush(self) -> None:
        data = self._take_pending()
        if self.stream.closed():
            return
        try:
            self.stream.write(data)
        except StreamBufferFullError as exc:
            self.close(ConnectionLostError(f"write buffer full: the device is not reading ({exc})"))
        except StreamClosedError:
            pass  # the read loop reports the closure and its cause

    def close(self, reason: BaseException) -> None:
        """Close the socket now; ``on_closed`` follows once the read loop has ended."""
        if self._close_reason is None:
            self._close_reason = reason
        self._take_pending()
        self.stream.close()

    async def close_after_sending(self, reason: BaseException, timeout: float) -> None:
        """Send what is queued, waiting at most ``timeout`` seconds for the peer to take it,
        then close with ``reason``: the graceful end a server gives its clients. Nothing sent
        meanwhile is queued."""
        if self.closing:
            return
        self._close_reason = reason
        data = self._take_pending()
        if data:
            with contextlib.suppress(StreamClosedError, StreamBufferFullError,
                                     asyncio.TimeoutError):
                await asyncio.wait_for(self.stream.write(data), timeout)
        self.stream.close()

    async def _read_loop(self) -> None:
        try:
            await self._pump()
        except StreamClosedError:
            pass
        except Exception as exc:
            # A bug of ours (the owner's handlers included): this connection ends, with the
            # error as its reason, and the owner reconnects; nothing is left half-handled.
            logger.exception("Error handling messages; closing the connection")
            self.close(exc)
        try:
            self._on_closed(self._reason())
        except Exception:
            logger.exception("Error reporting the end of a connection")

    async def _pump(self) -> None:
        buffer = bytearray(READ_MIN)
        loop = asyncio.get_running_loop()
        yield_at = loop.time() + YIELD_INTERVAL
        while True:
            read = cast("asyncio.Future[int]", self.stream.read_into(buffer, partial=True))
            if not read.done():  # the await below waits, so other work runs meanwhile
                n = await read
                yield_at = loop.time() + YIELD_INTERVAL
            else:
                n = read.result()
            self._feed(memoryview(buffer)[:n])
            size = next_read_size(len(buffer), n)
            if size != len(buffer):
                buffer = bytearray(size)
            self.read_size = size
            if loop.time() >= yield_at:
                await asyncio.sleep(0)
                yield_at = loop.time() + YIELD_INTERVAL

    def _feed(self, data: memoryview) -> None:
        # Apart from the read loop, so that nothing parsed outlives its chunk while the loop
        # waits for the next one (a chunk is a thousand messages).
        items = self._parser.append(data)
        if items:
            self._on_items(items)
        if self._parser.buffer_size >= self.max_line_length and self.close_on_long_line \
                and not self.closing:
            self.close(LineTooLongError(
                f"line longer than {self.max_line_length} bytes; resetting the connection"))

    def _reason(self) -> BaseException:
        if self._close_reason is not None:
            return self._close_reason
        error = self.stream.error
        if error is not None:
            return error if isinstance(error, BaseException) else ConnectionLostError(str(error))
        return ConnectionLostError("connection closed by the device")
