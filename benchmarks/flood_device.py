"""A minimal KATCP 5.1 device (flags ``MIB``) on plain asyncio, built to cost its clients nothing.

It answers what a sync needs (``?help``, ``?sensor-list``, ``?sensor-sampling`` including
bulk, ``?watchdog``) from pre-built bytes, and four benchmark requests:

- ``?flood`` writes a pre-built buffer of ``#sensor-status`` lines (see :mod:`wire`) to the
  requesting connection in one go, then replies ``ok <count>``, so the client is the bottleneck;
- ``?restart`` replies ``ok <t>``, where ``t`` is ``time.monotonic()`` of the moment the device
  then closes every connection and its listening socket; it listens again on the same port
  ``RESTART_GAP`` seconds later, with fresh values (the next generation);
- ``?stream <per-second> <seconds>`` replies ``ok`` at once, then sends that many
  ``#sensor-status`` lines a second for that long (round-robin over the sensors), each stamped
  with the moment it is written (``time.time()``), so that a client can measure the latency;
  one timer per process (:class:`Streams`) writes for every streaming device;
- every sampled sensor gets its current value at once, before the ``?sensor-sampling`` reply.

Sampling strategies are accepted and otherwise ignored: the device only sends what it is told to.
:func:`serve` runs several devices in one process, for :mod:`run` to start with ``spawn``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import katcp_codec
import wire

#: How long a restarting device stays away.
RESTART_GAP = 0.005
#: Seconds between two writes of a streaming device.
STREAM_TICK = 0.01
GREETING = (b"#version-connect katcp-protocol 5.1-MIB\n"
            b"#version-connect katcp-library benchmark-flood-device-1.0\n")
REQUESTS = {
    b"help": b"List\\_requests",
    b"sensor-list": b"List\\_sensors",
    b"sensor-sampling": b"Set\\_sampling\\_strategies",
    b"watchdog": b"Check\\_liveness",
    b"flood": b"Send\\_the\\_pre-built\\_#sensor-status\\_flood",
    b"restart": b"Close\\_everything\\_and\\_listen\\_again\\_with\\_fresh\\_values",
    b"stream": b"Send\\_time-stamped\\_updates\\_at\\_a\\_steady\\_rate",
}
_REPLY = katcp_codec.MessageType.REPLY


def _reply(name: bytes, mid: int | None, *args: bytes) -> bytes:
    return bytes(katcp_codec.Message(_REPLY, name, mid, list(args)))


def _inform_prefix(name: bytes, mid: int | None) -> bytes:
    return b"#" + name if mid is None else b"#%s[%d]" % (name, mid)


class _Stream:
    """One ``?stream``: where to, how fast, until when, and how far it got."""

    __slots__ = ("end", "names", "per_second", "sent", "start", "transport")

    def __init__(self, transport: asyncio.Transport, names: list[bytes], per_second: float,
                 seconds: float) -> None:
        self.transport = transport
        self.names = names
        self.per_second = per_second
        self.start = time.monotonic()
        self.end = self.start + seconds
        self.sent = 0


class Streams:
    """The streams of every device of this process, written by one periodic timer: each
    stream gets the lines it is due, stamped with the time they are written."""

    def __init__(self) -> None:
        self._streams: list[_Stream] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, stream: _Stream) -> None:
        self._streams.append(stream)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(STREAM_TICK, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        for stream in self._streams:
            due = int((min(now, stream.end) - stream.start) * stream.per_second) - stream.sent
            if due > 0 and not stream.transport.is_closing():
                stamp = b"%.6f" % time.time()
                names = stream.names
                first = stream.sent
                stream.transport.write(b"".join(
                    b"#sensor-status %s 1 %s nominal %d\n" % (stamp, names[i % len(names)], i)
                    for i in range(first, first + due)))
                stream.sent += due
        self._streams = [s for s in self._streams if s.end > now and not s.transport.is_closing()]
        self._timer = (asyncio.get_running_loop().call_later(STREAM_TICK, self._tick)
                       if self._streams else None)


STREAMS = Streams()


class FloodDevice:
    """One device: ``sensors`` float sensors and a flood of ``flood_updates`` lines."""

    def __init__(self, sensors: int, flood_updates: int) -> None:
        self.names = wire.sensor_names(sensors)
        self._index = {name.encode(): j for j, name in enumerate(self.names)}
        self._list_tails = [wire.sensor_list_tail(name) for name in self.names]
        self._flood = wire.flood_buffer(sensors, flood_updates)
        self._flood_updates = flood_updates
        self._generation = 0
        self._status_lines: list[bytes] = []
        self._connections: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._next_generation()

    def _next_generation(self) -> None:
        self._generation += 1
        now = time.time()
        self._status_lines = [
            wire.status_line(now, name, wire.generation_value(self._generation, j))
            for j, name in enumerate(self.names)]

    async def listen(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Protocol(self), "127.0.0.1", port,
                                                reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def connected(self, transport: asyncio.Transport) -> None:
        self._connections.add(transport)
        transport.write(GREETING)

    def disconnected(self, transport: asyncio.Transport) -> None:
        self._connections.discard(transport)

    def handle(self, transport: asyncio.Transport, name: bytes, mid: int | None,
               args: list[bytes]) -> None:
        handler = self._handlers.get(name)
        if handler is None:
            transport.write(_reply(name, mid, b"invalid", b"unknown request"))
        else:
            handler(self, transport, mid, args)

    def _help(self, transport: asyncio.Transport, mid: int | None, args: list[bytes]) -> None:
        prefix = _inform_prefix(b"help", mid)
        transport.write(b"".join(b"%s %s %s\n" % (prefix, name, text)
                                 for name, text in REQUESTS.items())
                        + _reply(b"help", mid, b"ok", b"%d" % len(REQUESTS)))

    def _sensor_list(self, transport: asyncio.Transport, mid: int | None,
                     args: list[bytes]) -> None:
        if args:
            j = self._index.get(args[0])
            if j is None:
                transport.write(_reply(b"sensor-list", mid, b"fail", b"unknown sensor"))
                return
            tails = [self._list_tails[j]]
        else:
            tails = self._list_tails
        prefix = _inform_prefix(b"sensor-list", mid)
        transport.write(b"".join(prefix + tail for tail in tails)
                        + _reply(b"sensor-list", mid, b"ok", b"%d" % len(tails)))

    def _sensor_sampling(self, transport: asyncio.Transport, mid: int | None,
                         args: list[bytes]) -> None:
        if len(args) < 2:
            transport.write(_reply(b"sensor-sampling", mid, b"fail", b"need names and strategy"))
            return
        indices = [self._index.get(name) for name in args[0].split(b",")]
        if None in indices:
            transport.write(_reply(b"sensor-sampling", mid, b"fail", b"unknown sensor"))
            return
        lines = [] if args[1] == b"none" else [self._status_lines[j] for j in indices
                                                if j is not None]
        transport.write(b"".join(lines) + _reply(b"sensor-sampling", mid, b"ok", *args))

    def _watchdog(self, transport: asyncio.Transport, mid: int | None,
                  args: list[bytes]) -> None:
        transport.write(_reply(b"watchdog", mid, b"ok"))

    def _flood_request(self, transport: asyncio.Transport, mid: int | None,
                       args: list[bytes]) -> None:
        transport.write(self._flood)
        transport.write(_reply(b"flood", mid, b"ok", b"%d" % self._flood_updates))

    def _restart(self, transport: asyncio.Transport, mid: int | None, args: list[bytes]) -> None:
        assert self._server is not None
        closed_at = time.monotonic()
        transport.write(_reply(b"restart", mid, b"ok", repr(closed_at).encode()))
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        self._next_generation()
        loop = asyncio.get_running_loop()
        loop.call_later(RESTART_GAP, lambda: loop.create_task(self.listen(self.port)))

    def _stream(self, transport: asyncio.Transport, mid: int | None, args: list[bytes]) -> None:
        try:
            per_second, seconds = float(args[0]), float(args[1])
        except (IndexError, ValueError):
            transport.write(_reply(b"stream", mid, b"fail", b"need per-second and seconds"))
            return
        transport.write(_reply(b"stream", mid, b"ok"))
        STREAMS.add(_Stream(transport, list(self._index), per_second, seconds))

    _handlers: dict[bytes, Callable[[FloodDevice, asyncio.Transport, int | None, list[bytes]],
                                    None]] = {
        b"help": _help,
        b"sensor-list": _sensor_list,
        b"sensor-sampling": _sensor_sampling,
        b"watchdog": _watchdog,
        b"flood": _flood_request,
        b"restart": _restart,
        b"stream": _stream,
    }


class _Protocol(asyncio.Protocol):
    def __init__(self, device: FloodDevice) -> None:
        self._device = device
        self._parser = katcp_codec.Parser(64 * 1024 * 1024)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._device.connected(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self._transport is not None
        self._device.disconnected(self._transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        for message in self._parser.append(data):
            if isinstance(message, ValueError) or message.mtype != katcp_codec.MessageType.REQUEST:
                continue  # clients send requests only; anything else is not for us
            self._device.handle(self._transport, message.name, message.mid, message.arguments)


def serve(specs: list[tuple[int, int]], control: Connection) -> None:
    """Run one device per ``(sensors, flood_updates)`` in ``specs``; send their ports on
    ``control`` and run until ``control`` is closed or receives anything."""
    asyncio.run(_serve(specs, control))


async def _serve(specs: list[tuple[int, int]], control: Connection) -> None:
    devices = [FloodDevice(sensors, updates) for sensors, updates in specs]
    await serve_until_told([await device.listen() for device in devices], control)


async def serve_until_told(ports: list[int], control: Connection) -> None:
    """Send ``ports`` on ``control``, then wait until it is closed or receives anything."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_control() -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_reader(control.fileno(), on_control)
    control.send(ports)
    await stop
    loop.remove_reader(control.fileno())
