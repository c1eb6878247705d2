"""One direction of the fault proxy (device → client or client → device): the faults armed
on it, and the forwarding of each connection's data in that direction, with those faults fired
exactly where they fall due (see :mod:`katcp_inspect.testing.proxy`).

May import the library and the testing toolkit's server module; the proxy itself only for
type checking.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Literal

import attrs
from tornado.iostream import IOStream, StreamClosedError

from ..waiting import Flag, wait_first
from .server import GARBAGE_LINE, garbage_line, long_line

if TYPE_CHECKING:
    from .proxy import FaultProxy, ProxyConnection

_TERMINATOR_RUNS = re.compile(rb"[\r\n]+")

DirectionName = Literal["to_client", "to_device"]


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


class Flow:
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

    def offset(self, conn: ProxyConnection, flow: Flow, data: bytes) -> int | None:
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

    def _flush_idle(self, flow: Flow) -> None:
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

    def _fired(self, conn: ProxyConnection, flow: Flow, trigger: _Trigger) -> None:
        if trigger.once:
            self._triggers.remove(trigger)
        else:  # counted again from here
            trigger.bases[conn] = (flow.bytes, flow.lines)

    async def _forward(self, conn: ProxyConnection, flow: Flow, data: bytes) -> None:
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

    async def _write(self, conn: ProxyConnection, flow: Flow, data: bytes) -> int:
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


