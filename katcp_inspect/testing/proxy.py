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
returns once every socket is closed and every task has ended. This module holds the proxy and
its connections; each direction's faults and forwarding are in
:mod:`katcp_inspect.testing.proxy_direction`. May import the library and the testing toolkit's
server and proxy_direction modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
from tornado.iostream import IOStream, StreamClosedError

from ..waiting import Counter, Flag, wait_first
from .proxy_direction import Direction, DirectionName, Flow
from .server import GARBAGE_LINE, StreamListener, Tasks, listen, reset_on_close

logger = logging.getLogger("katcp_inspect.testing.proxy")

_READ_CHUNK = 64 * 1024

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
        self.flows: dict[DirectionName, Flow] = {}
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
        to_client = conn.flows["to_client"] = Flow(device, conn.client_stream)
        to_device = conn.flows["to_device"] = Flow(conn.client_stream, device)
        await asyncio.gather(self._pump(conn, self.to_client, to_client),
                             self._pump(conn, self.to_device, to_device))

    async def _pump(self, conn: ProxyConnection, direction: Direction, flow: Flow) -> None:
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


__all__ = ["GARBAGE_LINE", "Direction", "DirectionName", "FaultEvent", "FaultKind", "FaultProxy",
           "ProxyConnection"]
