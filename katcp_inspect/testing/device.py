"""``SimulatedDevice``: a real KATCP device server on Tornado, for demos, tests and load tests.

The device speaks KATCP 5.1 (or 5.0, or 4) to any number of clients over TCP: the standard
requests, sensors of every type with per-connection sampling strategies, user-defined requests,
and ``#interface-changed`` when its interface changes at run time. Fault switches make it
misbehave on purpose (drop clients, stall, answer slowly, send garbage or over-long lines), so
that clients can be tested against the failures real devices have.

The device holds its sensors, requests and fault switches; each client is a
:class:`~katcp_inspect.testing.device_connection.ClientConnection` on the library's own
connection, and the standard requests are in :mod:`katcp_inspect.testing.standard_requests`.
May import the library and the rest of the testing toolkit but its harnesses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Union

import tornado
from tornado.iostream import IOStream

from .. import __version__
from ..errors import KatcpSyntaxError
from ..kattypes import Address, SensorStatus, encode_timestamp
from ..message import ArgumentLike, Message
from ..protocol import ProtocolFlags
from .device_connection import (
    ClientConnection,
    FailReply,
    H,
    InvalidReply,
    OfferedRequest,
    RequestContext,
    RequestHandler,
    RequestInfo,
)
from .sensors import DEMO_CHANGING, SimulatedSensor, ValueGenerator, demo_sensors
from .server import GARBAGE_LINE, StreamListener, Tasks, garbage_line, listen, long_line
from .standard_requests import LOG_LEVELS, add_standard_requests

__all__ = ["DEFAULT_FLAGS", "GARBAGE_LINE", "INTERFACE_CHANGED_STYLES", "LOG_LEVELS",
           "ClientConnection", "FailReply", "InvalidReply", "OfferedRequest", "RequestContext",
           "RequestHandler", "RequestInfo", "SimulatedDevice"]

logger = logging.getLogger("katcp_inspect.testing.device")

#: Styles of interface-change inform (see :class:`SimulatedDevice`).
INTERFACE_CHANGED_STYLES = ("sensor", "list", "bare", "device-changed")
#: Default flags per protocol version (flag order as given here is the order greeted with).
DEFAULT_FLAGS = {(5, 1): "MIBT", (5, 0): "MI", (4, 0): "M"}

_LOGGER_NAME = "katcp-inspect.simulated-device"

def _parse_protocol(protocol: str, flags: str | None) -> tuple[ProtocolFlags, str]:
    version, dash, given = protocol.strip().partition("-")
    if "." not in version:
        version += ".0"
    parsed = ProtocolFlags.parse_version(version)
    if parsed.major != 4 and (parsed.major, parsed.minor) not in DEFAULT_FLAGS:
        raise ValueError(f"the simulated device speaks KATCP 4, 5.0 and 5.1, not {protocol!r}")
    if flags is None:
        flags = given if dash else DEFAULT_FLAGS[(parsed.major, 0 if parsed.major == 4 else
                                                  parsed.minor)]
    flags = "".join(dict.fromkeys(flags))  # without repeats, in the order given
    return ProtocolFlags(parsed.major, parsed.minor, flags), flags


SensorSelection = Union[str, Iterable[str]]


class SimulatedDevice:
    """A KATCP device server with simulated sensors, for demos and tests.

    :param name: the device's name and API version (``#version-connect katcp-device``, or
        ``#version`` for KATCP 4).
    :param build: its build state (the third argument of ``katcp-device``, ``#build-state``).
    :param protocol: ``"5.1"`` (the default), ``"5.0"`` or ``"4"``, optionally with flags
        (``"5.1-MIB"``). KATCP 4 greets with ``#version`` and ``#build-state``, counts time in
        milliseconds, has no message ids and refuses ``event-rate`` and ``differential-rate``.
    :param flags: the protocol flags, overriding the version's default (``MIBT`` for 5.1,
        ``MI`` for 5.0, ``M`` for 4), in the order they are announced. Without ``M`` the device
        is single-client: a new client makes it drop the current one (after ``#disconnect``).
        ``?request-timeout-hint`` exists only with ``T``; bulk ``?sensor-sampling`` only with
        ``B``; requests are handled concurrently only with ``I``.
    :param sensors: sensors to start with.
    :param interface_changed: what every client is sent when a sensor or request is added,
        removed or replaced: ``"sensor"`` (``#interface-changed sensor <name> added``, or
        ``request <name> ...``), ``"list"`` (``#interface-changed sensor-list`` or
        ``request-list``), ``"bare"`` (``#interface-changed``), ``"device-changed"``
        (``#device-changed``, as the C library sends) or ``None`` (nothing).
    :param max_line_length: longest request line accepted (longer ones get ``#log error``).
    :param max_backlog: bytes queued for a client that does not read before it is dropped.
    """

    def __init__(
        self,
        name: str = "simulated-device-1.0",
        build: str = "simulated-device-1.0.0",
        *,
        protocol: str = "5.1",
        flags: str | None = None,
        sensors: Iterable[SimulatedSensor] = (),
        interface_changed: str | None = "sensor",
        max_line_length: int = 2**21,
        max_backlog: int = 2**26,
        log_level: str = "warn",
    ) -> None:
        self.name = name
        self.build = build
        self.protocol_flags, self._flags_text = _parse_protocol(protocol, flags)
        if interface_changed is not None and interface_changed not in INTERFACE_CHANGED_STYLES:
            raise ValueError(f"unknown interface_changed style {interface_changed!r}; "
                             f"use one of {INTERFACE_CHANGED_STYLES} or None")
        self.interface_changed = interface_changed
        self.max_line_length = max_line_length
        self.max_backlog = max_backlog
        if log_level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {log_level!r}; use one of {LOG_LEVELS}")
        self.log_level = log_level
        self._sensors: dict[str, SimulatedSensor] = {}
        self._requests: dict[str, OfferedRequest] = {}
        self._delays: dict[str, float] = {}
        self._connections: dict[ClientConnection, None] = {}
        self._tasks = Tasks()
        self._server: StreamListener | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._stalled = False
        self._generator: ValueGenerator | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        add_standard_requests(self)
        for sensor in sensors:
            self._sensors[sensor.name] = sensor

    @classmethod
    def with_demo_sensors(cls, count: int = 40, *, rate: float | None = 1.0,
                          **kwargs: Any) -> SimulatedDevice:
        """A device with :func:`~katcp_inspect.testing.demo_sensors` (``count`` sensors of
        every type); unless ``rate`` is ``None``, some of them change ``rate`` times a second
        while the device runs. ``kwargs`` go to the constructor."""
        device = cls(sensors=demo_sensors(count), **kwargs)
        if rate:
            device.start_generator(f"/{DEMO_CHANGING}/", rate)
        return device

    # -- properties ----------------------------------------------------------------------------

    @property
    def protocol(self) -> str:
        """The protocol as greeted: ``5.1-MIBT``, ``5.0-MI``, ``4.0``..."""
        flags = self.protocol_flags
        version = f"{flags.major}.{flags.minor}"
        return f"{version}-{self._flags_text}" if flags.major >= 5 and self._flags_text \
            else version

    @property
    def library_version(self) -> str:
        return f"katcp-inspect-{__version__}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port bound by the last :meth:`start` (kept after :meth:`stop`)."""
        if self._port is None:
            raise RuntimeError("the device has not been started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return self._host, self.port

    @property
    def connections(self) -> tuple[ClientConnection, ...]:
        return tuple(self._connections)

    @property
    def sensors(self) -> Mapping[str, SimulatedSensor]:
        return MappingProxyType(self._sensors)

    @property
    def requests(self) -> Mapping[str, OfferedRequest]:
        return MappingProxyType(self._requests)

    @property
    def delays(self) -> Mapping[str, float]:
        """Seconds each request waits before it is handled (see :meth:`set_delay`)."""
        return MappingProxyType(self._delays)

    @property
    def stalled(self) -> bool:
        return self._stalled

    @property
    def generator(self) -> ValueGenerator | None:
        return self._generator

    # -- starting and stopping -----------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Listen on ``host:port`` (port 0: any free port, then see :attr:`port`).

        Without arguments, the host and port of the previous start are used again (at first
        127.0.0.1 and a free port), so ``await device.stop(); await device.start()``
        simulates a restart on the same address.
        """
        if self._server is not None:
            raise RuntimeError("the device is already running")
        host = self._host if host is None else host
        if port is None:
            port = 0 if self._port is None else self._port
        self._server, self._port = listen(self._accept, host, port)
        self._host = host
        self._stopped = asyncio.Event()
        self._stop_task = None
        if self._generator is not None:
            self._generator.start()
        logger.info("Simulated device listening on %s:%d", host, self._port)

    async def stop(self) -> None:
        """Close every client (after sending what is queued for it) and the listening socket;
        no task or timer of the device is left. Stopping a stopped device does nothing."""
        if self._server is not None and self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())
        if self._stop_task is not None:
            await asyncio.shield(self._stop_task)

    def halt(self) -> None:
        """Start stopping the device without waiting (for signal handlers and ``?halt``)."""
        if self._server is not None and self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())

    async def join(self) -> None:
        """Wait until the device has stopped (by :meth:`stop`, :meth:`halt` or ``?halt``)."""
        if self._stopped is not None:
            await self._stopped.wait()

    async def __aenter__(self) -> SimulatedDevice:
        """``async with SimulatedDevice(...) as device:`` starts the device (as :meth:`start`
        without arguments: 127.0.0.1 and a free port at first) and stops it on leaving, with
        any test runner or none."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _stop(self) -> None:
        server, self._server = self._server, None
        assert server is not None
        server.stop()
        if self._generator is not None:
            self._generator.stop()
        self._stalled = False  # a restarted device is not hung; held output is dropped
        await asyncio.gather(*(conn.close() for conn in list(self._connections)))
        self._tasks.cancel()
        await self._tasks.wait()
        assert self._stopped is not None
        self._stopped.set()
        logger.info("Simulated device on %s:%s stopped", self._host, self._port)

    # -- connections ---------------------------------------------------------------------------

    def _accept(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if self._server is None:
            stream.close()
            return
        stream.max_write_buffer_size = self.max_backlog
        stream.set_nodelay(True)
        peer = Address(str(address[0]), int(address[1])) if isinstance(address, tuple) \
            and len(address) >= 2 else Address(str(address), None)
        conn = ClientConnection(self, stream, peer)
        if self.protocol_flags.multi_client:
            self._broadcast(Message.inform("client-connected", str(peer)))
        else:
            for old in list(self._connections):
                old.send(Message.inform("disconnect", f"New client connected from {peer}"))
                self._tasks.spawn(old.close())
        self._connections[conn] = None
        for message in self.greeting():
            conn.send(message)
        conn.start()

    def _forget(self, conn: ClientConnection) -> None:
        self._connections.pop(conn, None)

    def greeting(self) -> list[Message]:
        """The informs a client gets on connecting."""
        if self.protocol_flags.major < 5:
            return [Message.inform("version", self.name),
                    Message.inform("build-state", self.build)]
        return [
            Message.inform("version-connect", "katcp-protocol", self.protocol),
            Message.inform("version-connect", "katcp-library", self.library_version,
                           f"tornado-{tornado.version}"),
            Message.inform("version-connect", "katcp-device", self.name, self.build),
        ]

    def _broadcast(self, message: Message | bytes) -> None:
        data = message if isinstance(message, bytes) else message.encode()
        for conn in self._connections:
            conn.send(data)

    def mass_inform(self, name: str, *args: ArgumentLike) -> None:
        """Send the inform ``#name args...`` to every client."""
        self._broadcast(Message.inform(name, *args))

    def log_enabled(self, level: str) -> bool:
        index = LOG_LEVELS.index(level)
        return 0 < index <= LOG_LEVELS.index(self.log_level)

    def log_message(self, level: str, text: str) -> Message:
        now = encode_timestamp(time.time(), major=self.protocol_flags.major)
        return Message.inform("log", level, now, _LOGGER_NAME, text)

    def log(self, level: str, text: str) -> None:
        """Send ``#log`` to every client, if ``level`` is enabled by ``?log-level``."""
        if self.log_enabled(level):
            self._broadcast(self.log_message(level, text))

    # -- sensors -------------------------------------------------------------------------------

    def add_sensor(self, sensor: SimulatedSensor) -> SimulatedSensor:
        """Add a sensor, or replace the one of the same name ("modified"; the clients'
        strategies on the old one are dropped). Clients are told (see ``interface_changed``)."""
        self.add_sensors([sensor])
        return sensor

    def add_sensors(self, sensors: Iterable[SimulatedSensor]) -> None:
        """Add or replace several sensors, with one ``#interface-changed`` per sensor (one in
        all for the styles without names)."""
        changes = []
        for sensor in sensors:
            old = self._sensors.get(sensor.name)
            if old is sensor:
                continue
            self._sensors[sensor.name] = sensor
            if old is not None:
                for conn in self._connections:
                    conn.sampling.discard(sensor.name)
            changes.append((sensor.name, "added" if old is None else "modified"))
        if changes and self._generator is not None:
            self._generator.invalidate()
        self._interface_changed("sensor", changes)

    def remove_sensor(self, name: str) -> SimulatedSensor:
        """Remove a sensor (``KeyError`` if there is none); clients' strategies on it go too."""
        sensor = self._sensors.pop(name)
        for conn in self._connections:
            conn.sampling.discard(name)
        if self._generator is not None:
            self._generator.invalidate()
        self._interface_changed("sensor", [(name, "removed")])
        return sensor

    def get_sensor(self, name: str) -> SimulatedSensor:
        return self._sensors[name]

    def set_value(self, name: str, value: Any, status: SensorStatus | str | None = None,
                  timestamp: float | None = None) -> None:
        """Give sensor ``name`` a new reading (status ``nominal`` and the current time unless
        given); clients with a strategy on it are updated as the strategy says."""
        self._sensors[name].set_value(value, status, timestamp)

    def set_status(self, name: str, status: SensorStatus | str,
                   timestamp: float | None = None) -> None:
        """Give sensor ``name`` a new reading with the same value and another status."""
        self._sensors[name].set_status(status, timestamp)

    def _select(self, selection: SensorSelection) -> Callable[[], list[SimulatedSensor]]:
        if isinstance(selection, str) and len(selection) >= 2 and selection[0] == "/" \
                and selection[-1] == "/":
            pattern = re.compile(selection[1:-1])
            return lambda: [s for n, s in sorted(self._sensors.items()) if pattern.search(n)]
        names = [selection] if isinstance(selection, str) else list(selection)
        missing = [name for name in names if name not in self._sensors]
        if missing:
            raise KeyError(f"no sensors named {', '.join(missing)}")
        return lambda: [self._sensors[n] for n in names if n in self._sensors]

    def start_generator(self, sensors: SensorSelection = "/.*/",
                        rate: float = 1.0) -> ValueGenerator:
        """Update the selected sensors ``rate`` times a second with changing values of their
        type while the device runs (replacing any generator running already).

        ``sensors`` is one name, a list of names, or ``"/regex/"`` (``re.search`` on names,
        also matching sensors added later).
        """
        self.stop_generator()
        generator = ValueGenerator(self._select(sensors), rate)
        self._generator = generator
        if self.running:
            generator.start()
        return generator

    def stop_generator(self) -> None:
        if self._generator is not None:
            self._generator.stop()
            self._generator = None

    # -- requests ------------------------------------------------------------------------------

    def add_request(self, name: str, handler: RequestHandler, *, help: str | None = None,
                    timeout_hint: float | None = None) -> None:
        """Offer the request ``?name`` (replacing any request of that name: "modified").

        ``handler(ctx, *args)`` gets a :class:`RequestContext` and the request's arguments as
        ``bytes``; a request whose arguments do not fit the handler's signature gets
        ``invalid``. The handler's result is the reply: ``None`` gives ``ok``, a tuple
        ``ok`` and its items, anything else ``ok value``; :class:`FailReply` and
        :class:`InvalidReply` give ``fail`` and ``invalid``, any other exception ``fail``
        with its text. ``help`` defaults to the handler's docstring.
        """
        try:
            Message.request(name)
        except KatcpSyntaxError:
            raise ValueError(f"invalid request name {name!r}") from None
        description = help if help is not None else (inspect.getdoc(handler) or "")
        try:
            signature: inspect.Signature | None = inspect.signature(handler)
        except (TypeError, ValueError):
            signature = None
        existed = name in self._requests
        self._requests[name] = OfferedRequest(name, handler, description, timeout_hint,
                                              signature)
        self._interface_changed("request", [(name, "modified" if existed else "added")])

    def request(self, name: str, *, help: str | None = None,
                timeout_hint: float | None = None) -> Callable[[H], H]:
        """Decorator form of :meth:`add_request`.

        For example::

            @device.request("add", help="Add two integers.", timeout_hint=2.0)
            async def add(ctx, a: bytes, b: bytes) -> int:
                return int(a) + int(b)
        """

        def register(handler: H) -> H:
            self.add_request(name, handler, help=help, timeout_hint=timeout_hint)
            return handler

        return register

    def remove_request(self, name: str) -> None:
        """Stop offering ``?name`` (``KeyError`` if it is not offered); standard requests too."""
        del self._requests[name]
        self._interface_changed("request", [(name, "removed")])

    def _interface_changed(self, kind: str, changes: Sequence[tuple[str, str]]) -> None:
        style = self.interface_changed
        if style is None or not changes or not self._connections:
            return
        if style == "sensor":
            for name, action in changes:
                self.mass_inform("interface-changed", kind, name, action)
        elif style == "list":
            self.mass_inform("interface-changed", f"{kind}-list")
        elif style == "bare":
            self.mass_inform("interface-changed")
        elif style == "device-changed":
            self.mass_inform("device-changed")
        else:
            raise ValueError(f"unknown interface_changed style {style!r}; "
                             f"use one of {INTERFACE_CHANGED_STYLES} or None")

    # -- fault switches ------------------------------------------------------------------------

    def drop_clients(self, *, reset: bool = False) -> None:
        """Close every client connection at once (``reset``: with a TCP RST). The device goes
        on listening."""
        for conn in list(self._connections):
            conn.abort(reset=reset)

    def stall(self) -> None:
        """Stop answering, keeping connections open: requests wait, other output is held back
        (both follow on :meth:`resume`), and sensor updates that fall due are lost."""
        self._stalled = True

    def resume(self) -> None:
        """End a :meth:`stall`: send what was held, then handle the requests that waited."""
        if self._stalled:
            self._stalled = False
            for conn in list(self._connections):
                conn._resume()

    def set_delay(self, request: str, seconds: float | None) -> None:
        """Make every ``?request`` wait ``seconds`` before it is handled (``None`` or 0: no
        delay). Without message ids this also holds up the client's later requests."""
        if seconds:
            self._delays[request] = float(seconds)
        else:
            self._delays.pop(request, None)

    def send_garbage(self, data: bytes = GARBAGE_LINE) -> None:
        """Send ``data`` (a line that is not KATCP, by default) to every client as it is."""
        self._broadcast(garbage_line(data))

    def send_long_line(self, size: int) -> None:
        """Send every client an inform ``#long-line xxx...`` longer than ``size`` bytes."""
        self._broadcast(long_line(size))
