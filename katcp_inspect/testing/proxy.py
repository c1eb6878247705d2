"""``FaultProxy``: a TCP proxy on the loopback interface that injects faults, for tests.

Put the proxy between a client and a device, then make the link misbehave in either direction
(``proxy.to_client``: device → client; ``proxy.to_device``: client → device)::

    proxy = FaultProxy("127.0.0.1", device.port)
    await proxy.start()                        # clients connect to proxy.port
    proxy.to_client.cut_after(lines=7)         # drop the next connection after its 7th line
    proxy.to_client.stall()                    # stop forwarding until resume()
    proxy.to_client.resume()
    proxy.to_client.fragment = True            # deliver every byte in a write of its own
    proxy.to_device.delay = 0.05               # 50 ms more latency towards the device
    proxy.to_client.inject_garbage()           # a line that is not KATCP, between two lines
    proxy.drop_connections()                   # close every proxied connection
    await proxy.stop()                         # nothing of the proxy is left running

Faults apply per direction. *Lines* are KATCP messages: a run of bytes ended by ``\\n`` or
``\\r`` (empty lines do not count). Byte and line counts that trigger a fault are counted per
connection, from the start of a connection accepted after the fault was armed, or from the
moment it was armed for a connection already open. A triggered fault fires exactly at that
point: the bytes before it are forwarded, none after. Injected data goes in between two lines
(never inside one) and counts towards nothing.

The proxy listens on a loopback address only, uses no threads, and :meth:`FaultProxy.stop`
returns once every socket is closed and every task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
from tornado.iostream import IOStream, StreamClosedError

from ..waiting import Counter, Flag, wait_first
from .server import (
    GARBAGE_LINE,
    StreamListener,
    Tasks,
    garbage_line,
    listen,
    long_line,
    reset_on_close,
)

logger = logging.getLogger("katcp_inspect.testing.proxy")

_READ_CHUNK = 64 * 1024
_TERMINATOR_RUNS = re.compile(rb"[\r\n]+")

DirectionName = Literal["to_client", "to_device"]
FaultKind = Literal["cut", "stall", "resume", "inject", "drop"]


@attrs.frozen
class FaultEvent:
    """A fault that happened: what, in which direction, on which connection, and when
    (``time.time()``)."""

    kind: FaultKind
    direction: DirectionName | None
    connection: ProxyConnection | None
    time: float
    detail: str = ""


FaultCallback = Callable[[FaultEvent], Any]


def _count_lines(data: bytes | memoryview, in_line: bool) -> tuple[int, bool]:
    """How many lines ``data`` completes, and whether it ends inside a line."""
    count = 0
    last_end = 0
    for run in _TERMINATOR_RUNS.finditer(data):
        if run.start() > 0 or in_line:
            count += 1
        in_line = False
        last_end = run.end()
    if len(data) > last_end:
        in_line = True
    return count, in_line


def _offset_of_line_end(data: bytes, in_line: bool, lines: int) -> int | None:
    """The offset just after the terminator that completes the ``lines``-th line of ``data``
    (``lines >= 1``), or ``None`` if ``data`` completes fewer lines."""
    for run in _TERMINATOR_RUNS.finditer(data):
        if run.start() > 0 or in_line:
            lines -= 1
            if lines == 0:
                return run.start() + 1
        in_line = False
    return None


class _Flow:
    """One direction of one proxied connection: where it reads, where it writes, its counts."""

    def __init__(self, source: IOStream, sink: IOStream) -> None:
        self.source = source
        self.sink = sink
        #: Bytes and lines forwarded (injected data not included).
        self.bytes = 0
        self.lines = 0
        #: Whether the data forwarded so far ends inside a line.
        self.in_line = False
        self.busy = False
        self.injections: list[bytes] = []


class ProxyConnection:
    """One client connection through the proxy, and its connection to the target."""

    def __init__(self, proxy: FaultProxy, number: int, client: IOStream,
                 address: Any) -> None:
        self.proxy = proxy
        #: 1 for the first connection the proxy accepted, 2 for the next...
        self.number = number
        self.client_address = address
        self.client_stream = client
        self.device_stream: IOStream | None = None
        self.flows: dict[DirectionName, _Flow] = {}
        self._closed = Flag()

    def __repr__(self) -> str:
        return f"<ProxyConnection #{self.number} from {self.client_address}>"

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def forwarded(self, direction: DirectionName) -> tuple[int, int]:
        """``(bytes, lines)`` forwarded so far in ``direction`` on this connection."""
        flow = self.flows.get(direction)
        return (0, 0) if flow is None else (flow.bytes, flow.lines)

    def close(self, *, reset: bool = False) -> None:
        """Close both sides (``reset``: with a TCP RST rather than a FIN)."""
        if self.closed:
            return
        self._closed.set()
        for stream in (self.client_stream, self.device_stream):
            if stream is None:
                continue
            if reset:
                reset_on_close(stream)
            stream.close()
        self.proxy._forget(self)

    def _until_closed(self) -> asyncio.Future[None]:
        return self._closed.wait()


@attrs.define(eq=False)
class _Trigger:
    action: Literal["cut", "stall"]
    nbytes: int | None
    lines: int | None
    once: bool
    reset: bool = False
    duration: float | None = None
    #: Counts of the connections open when the trigger was armed, by connection.
    bases: dict[ProxyConnection, tuple[int, int]] = attrs.Factory(dict)

    def offset(self, conn: ProxyConnection, flow: _Flow, data: bytes) -> int | None:
        """Where in ``data`` (about to be forwarded on ``flow``) this trigger fires."""
        base_bytes, base_lines = self.bases.get(conn, (0, 0))
        found: int | None = None
        if self.nbytes is not None:
            remaining = self.nbytes - (flow.bytes - base_bytes)
            if remaining <= len(data):
                found = max(0, remaining)
        if self.lines is not None:
            remaining = self.lines - (flow.lines - base_lines)
            at = 0 if remaining <= 0 else _offset_of_line_end(data, flow.in_line, remaining)
            if at is not None and (found is None or at < found):
                found = at
        return found


class Direction:
    """The faults of one direction of the proxy (``proxy.to_client`` or ``proxy.to_device``).

    :attr:`fragment` and :attr:`delay` may be changed at any time.
    """

    def __init__(self, proxy: FaultProxy, name: DirectionName) -> None:
        self._proxy = proxy
        self.name: DirectionName = name
        #: Deliver every byte in a write of its own (each awaited, and the event loop run
        #: once, before the next).
        self.fragment = False
        #: Seconds each chunk is held before it is forwarded.
        self.delay = 0.0
        #: Totals over every connection: bytes and lines forwarded, faults fired.
        self.bytes = 0
        self.lines = 0
        self.cuts = 0
        self.stalls = 0
        self._triggers: list[_Trigger] = []
        self._flowing = Flag(True)
        self._stall_handle: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Direction {self.name}{' stalled' if self.stalled else ''}>"

    # -- arming faults -------------------------------------------------------------------------

    def cut_after(self, *, nbytes: int | None = None, lines: int | None = None,
                  once: bool = True, reset: bool = False) -> None:
        """Close a connection once ``nbytes`` bytes or ``lines`` lines (whichever comes first)
        have been forwarded in this direction. ``once``: only the first connection to get there
        is cut; otherwise every one is. ``reset``: close with a TCP RST."""
        self._arm(_Trigger("cut", nbytes, lines, once, reset=reset))

    def stall_after(self, *, nbytes: int | None = None, lines: int | None = None,
                    duration: float | None = None, once: bool = True) -> None:
        """Like :meth:`cut_after`, but :meth:`stall` the direction there instead (for
        ``duration`` seconds, or until :meth:`resume`)."""
        self._arm(_Trigger("stall", nbytes, lines, once, duration=duration))

    def _arm(self, trigger: _Trigger) -> None:
        if trigger.nbytes is None and trigger.lines is None:
            raise ValueError("give nbytes, lines or both")
        for value in (trigger.nbytes, trigger.lines):
            if value is not None and value < (0 if trigger.once else 1):
                raise ValueError(f"count {value} out of range (a trigger that fires again "
                                 "needs a count of at least 1)")
        for conn in self._proxy.connections:
            flow = conn.flows.get(self.name)
            if flow is not None:
                trigger.bases[conn] = (flow.bytes, flow.lines)
        self._triggers.append(trigger)

    def clear(self) -> None:
        """Disarm every trigger, resume, and stop fragmenting and delaying."""
        self._triggers.clear()
        self.fragment = False
        self.delay = 0.0
        self.resume()

    @property
    def armed(self) -> int:
        """How many triggers are armed and have not fired (``once``) yet."""
        return len(self._triggers)

    # -- stalling ------------------------------------------------------------------------------

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def _is_stalled(self) -> bool:
        # A call, not the property: mypy would carry what it learnt before an await past it.
        return not self._flowing.is_set()

    def stall(self, duration: float | None = None) -> None:
        """Stop forwarding in this direction, on every connection (new ones too), for
        ``duration`` seconds or until :meth:`resume`. Data waits in the proxy and the
        kernel's buffers; nothing is lost unless the connection closes meanwhile."""
        self._flowing.clear()
        self.stalls += 1
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        if duration is not None:
            self._stall_handle = asyncio.get_running_loop().call_later(duration, self.resume)
        self._proxy._event("stall", self.name, None,
                           "" if duration is None else f"for {duration:g} s")

    def resume(self) -> None:
        """Forward again what a :meth:`stall` held back, and what follows."""
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        if not self.stalled:
            return
        self._flowing.set()
        for conn in self._proxy.connections:
            flow = conn.flows.get(self.name)
            if flow is not None:
                self._flush_idle(flow)
        self._proxy._event("resume", self.name, None)

    async def _until_resumed(self, conn: ProxyConnection) -> None:
        while self.stalled and not conn.closed:
            await wait_first(self._flowing.wait(), conn._until_closed())

    # -- injecting -----------------------------------------------------------------------------

    def inject(self, data: bytes) -> None:
        """Send ``data`` as it is on every open connection, at the next line boundary (once
        the direction is no longer stalled)."""
        for conn in self._proxy.connections:
            flow = conn.flows.get(self.name)
            if flow is None:
                continue
            flow.injections.append(data)
            self._flush_idle(flow)
        self._proxy._event("inject", self.name, None, f"{len(data)} bytes")

    def _flush_idle(self, flow: _Flow) -> None:
        """Send what is to be injected on a flow that has no data of its own in hand."""
        if flow.injections and not flow.busy and not flow.in_line and not self.stalled:
            _write_quietly(flow.sink, b"".join(flow.injections))
            flow.injections.clear()

    def inject_garbage(self, data: bytes = GARBAGE_LINE) -> None:
        """Inject a line that is not KATCP (by default); a line ending is added if missing."""
        self.inject(garbage_line(data))

    def inject_long_line(self, size: int, name: bytes = b"long-line") -> None:
        """Inject an inform ``#name xxx...`` of more than ``size`` bytes (with its ending)."""
        self.inject(long_line(size, name))

    # -- forwarding ----------------------------------------------------------------------------

    def _fired(self, conn: ProxyConnection, flow: _Flow, trigger: _Trigger) -> None:
        if trigger.once:
            self._triggers.remove(trigger)
        else:  # counted again from here
            trigger.bases[conn] = (flow.bytes, flow.lines)

    async def _forward(self, conn: ProxyConnection, flow: _Flow, data: bytes) -> None:
        """Forward ``data`` read from ``flow.source``, firing faults where they fall due."""
        while data and not conn.closed:
            if self.stalled:
                await self._until_resumed(conn)
                continue
            if self.delay > 0:
                await self._proxy._sleep(conn, self.delay)
                if conn.closed or self._is_stalled():
                    continue
            first: tuple[int, _Trigger] | None = None
            for trigger in self._triggers:
                at = trigger.offset(conn, flow, data)
                if at is not None and (first is None or at < first[0]):
                    first = (at, trigger)
            chunk = data if first is None else data[:first[0]]
            if chunk:
                written = await self._write(conn, flow, chunk)
                data = data[written:]
                if written < len(chunk):
                    continue  # stalled (or closed) part-way through
            if first is None or conn.closed:
                continue
            trigger = first[1]
            self._fired(conn, flow, trigger)
            if trigger.action == "cut":
                self.cuts += 1
                self._proxy._event("cut", self.name, conn,
                                   f"after {flow.bytes} bytes, {flow.lines} lines")
                conn.close(reset=trigger.reset)
                return
            self.stall(trigger.duration)

    async def _write(self, conn: ProxyConnection, flow: _Flow, data: bytes) -> int:
        """Write ``data`` (with any injections due); stops early, at a line boundary or
        between two fragments, if the direction is stalled meanwhile. Returns the number of
        bytes of ``data`` written."""
        written = 0
        while written < len(data) and not conn.closed:
            if written and self.stalled and (self.fragment or not flow.in_line):
                return written
            if flow.injections and not flow.in_line:
                injected = b"".join(flow.injections)
                flow.injections.clear()
                await flow.sink.write(injected)
                continue
            if self.fragment:
                piece = data[written:written + 1]
            else:
                piece = data[written:]
                if flow.injections:
                    at = _offset_of_line_end(piece, flow.in_line, 1)
                    piece = piece if at is None else piece[:at]
            await flow.sink.write(piece)
            if self.fragment:
                # Let the peer (often in this very process) read each byte on its own.
                await asyncio.sleep(0)
            written += len(piece)
            lines, flow.in_line = _count_lines(piece, flow.in_line)
            flow.bytes += len(piece)
            flow.lines += lines
            self.bytes += len(piece)
            self.lines += lines
        if flow.injections and not flow.in_line and not conn.closed:
            injected = b"".join(flow.injections)
            flow.injections.clear()
            await flow.sink.write(injected)
        return written


def _write_quietly(stream: IOStream, data: bytes) -> None:
    if stream.closed():
        return
    try:
        future = stream.write(data)
    except StreamClosedError:
        return
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


class FaultProxy:
    """A TCP proxy from ``host:port`` (loopback; port 0 picks a free one) to
    ``target_host:target_port``, with faults to inject in either direction.

    Every accepted connection gets a connection of its own to the target (made when it is
    accepted; if that fails, the client's connection is closed). :attr:`to_client` and
    :attr:`to_device` hold the faults of each direction.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1",
                 port: int = 0, connect_timeout: float = 5.0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the fault proxy listens on loopback addresses only, not {host!r}")
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.connect_timeout = connect_timeout
        #: Faults of the device → client direction.
        self.to_client = Direction(self, "to_client")
        #: Faults of the client → device direction.
        self.to_device = Direction(self, "to_device")
        #: Every fault that happened, in order (see :meth:`add_fault_callback`).
        self.events: list[FaultEvent] = []
        self._port = port
        self._server: StreamListener | None = None
        self._connections: dict[ProxyConnection, None] = {}
        self._tasks = Tasks()
        self._callbacks: list[FaultCallback] = []
        self._accepted = Counter()

    def __repr__(self) -> str:
        return (f"<FaultProxy {self.host}:{self._port} -> {self.target_host}:"
                f"{self.target_port}, {len(self._connections)} connections>")

    # -- properties ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on (after :meth:`start`)."""
        if self._server is None and self._port == 0:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def accepted(self) -> int:
        """Connections accepted so far (open or not)."""
        return self._accepted.value

    @property
    def connections(self) -> list[ProxyConnection]:
        """The open connections, oldest first."""
        return list(self._connections)

    def direction(self, name: DirectionName) -> Direction:
        return self.to_client if name == "to_client" else self.to_device

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on the port given, or the one of the previous start, or a free one)."""
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._server, self._port = listen(self._accept, self.host, self._port)
        logger.debug("Fault proxy %s:%d -> %s:%d", self.host, self._port, self.target_host,
                     self.target_port)

    async def stop(self) -> None:
        """Stop listening, close every connection, and wait until every task has ended.
        Stopped faults stay armed: :meth:`start` again resumes with them."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self.drop_connections()
        await self._tasks.wait()
        for direction in (self.to_client, self.to_device):
            if direction._stall_handle is not None:
                direction._stall_handle.cancel()
                direction._stall_handle = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def drop_connections(self, *, reset: bool = False) -> None:
        """Close every open connection, both sides (``reset``: with a TCP RST). The proxy goes
        on listening."""
        connections = list(self._connections)
        for conn in connections:
            conn.close(reset=reset)
        if connections:
            self._event("drop", None, None, f"{len(connections)} connections")

    async def until_accepted(self, count: int, timeout: float = 5.0) -> None:
        """Wait until the proxy has accepted ``count`` connections in all."""
        try:
            await asyncio.wait_for(self._accepted.wait_for(count), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the proxy accepted {self.accepted} connections, not "
                               f"{count}, within {timeout:g} s") from None

    # -- events --------------------------------------------------------------------------------

    def add_fault_callback(self, callback: FaultCallback) -> None:
        """Call ``callback(event)`` with every :class:`FaultEvent`, when it happens (cuts are
        reported after the connection is closed). Exceptions are logged and ignored."""
        self._callbacks.append(callback)

    def remove_fault_callback(self, callback: FaultCallback) -> None:
        self._callbacks.remove(callback)

    def _event(self, kind: FaultKind, direction: DirectionName | None,
               conn: ProxyConnection | None, detail: str = "") -> None:
        event = FaultEvent(kind, direction, conn, time.time(), detail)
        self.events.append(event)
        logger.debug("Fault proxy %d: %s %s %s %s", self._port, kind, direction or "",
                     conn or "", detail)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                logger.exception("Fault callback %r raised", callback)

    # -- connections ---------------------------------------------------------------------------

    def _forget(self, conn: ProxyConnection) -> None:
        self._connections.pop(conn, None)
        for direction in (self.to_client, self.to_device):
            for trigger in direction._triggers:
                trigger.bases.pop(conn, None)

    def _accept(self, stream: IOStream, address: Any) -> None:
        if self._server is None:
            stream.close()
            return
        self._accepted.increment()
        conn = ProxyConnection(self, self.accepted, stream, address)
        self._connections[conn] = None
        self._tasks.spawn(self._serve(conn))

    async def _connect_target(self) -> IOStream:
        loop = asyncio.get_running_loop()
        try:
            infos = socket.getaddrinfo(self.target_host, self.target_port,
                                       type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            infos = await loop.getaddrinfo(self.target_host, self.target_port,
                                           type=socket.SOCK_STREAM)
        family, _, _, _, sockaddr = infos[0]
        stream = IOStream(socket.socket(family, socket.SOCK_STREAM))
        try:
            await asyncio.wait_for(stream.connect(sockaddr), self.connect_timeout)
        except BaseException:
            stream.close()
            raise
        return stream

    async def _serve(self, conn: ProxyConnection) -> None:
        try:
            device = await self._connect_target()
        except (OSError, StreamClosedError, asyncio.TimeoutError) as exc:
            logger.debug("Fault proxy: no connection to %s:%d (%s); closing the client's",
                         self.target_host, self.target_port, exc)
            conn.close()
            return
        if conn.closed:
            device.close()
            return
        conn.device_stream = device
        for stream in (conn.client_stream, device):
            with contextlib.suppress(OSError, StreamClosedError):
                stream.set_nodelay(True)
        to_client = conn.flows["to_client"] = _Flow(device, conn.client_stream)
        to_device = conn.flows["to_device"] = _Flow(conn.client_stream, device)
        await asyncio.gather(self._pump(conn, self.to_client, to_client),
                             self._pump(conn, self.to_device, to_device))

    async def _pump(self, conn: ProxyConnection, direction: Direction, flow: _Flow) -> None:
        try:
            while not conn.closed:
                data = await flow.source.read_bytes(_READ_CHUNK, partial=True)
                flow.busy = True
                try:
                    await direction._forward(conn, flow, data)
                finally:
                    flow.busy = False
        except StreamClosedError:
            pass
        finally:
            conn.close()

    async def _sleep(self, conn: ProxyConnection, seconds: float) -> None:
        """Sleep, but wake up at once if ``conn`` closes."""
        await wait_first(conn._until_closed(), timeout=seconds)


__all__ = ["GARBAGE_LINE", "Direction", "FaultEvent", "FaultProxy", "ProxyConnection"]
