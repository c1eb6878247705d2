"""One client of the simulated device, and what its request handlers are given.

A :class:`ClientConnection` reads and writes through the library's own
:class:`~katcp_inspect.connection.Connection` (chunked reads into katcp-codec, one write per
event-loop iteration); on top it keeps the client's sampling strategies, holds output and
requests back while the device is stalled, and runs each request through its handler.

May import the library and the testing toolkit's sampling, sensors and server modules; the
device itself only for type checking.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from tornado.iostream import IOStream

from ..codec import ParsedItem
from ..connection import Connection
from ..errors import ConnectionLostError
from ..kattypes import Address
from ..message import ArgumentLike, Message, MessageType
from .sampling import ConnectionSampling
from .sensors import SimulatedSensor
from .server import Tasks, reset_on_close

if TYPE_CHECKING:
    from .device import SimulatedDevice

logger = logging.getLogger("katcp_inspect.testing.device")

RequestHandler = Callable[..., Any]
"""``handler(ctx, *args: bytes)``, a coroutine function (or a plain function) whose result is
the reply: ``None`` for ``ok``, a tuple for ``ok`` and its items, anything else for ``ok value``.
"""
H = TypeVar("H", bound=RequestHandler)


class FailReply(Exception):
    """Raise in a request handler to reply ``fail <reason>``."""


class InvalidReply(Exception):
    """Raise in a request handler to reply ``invalid <reason>``."""


@attrs.frozen(eq=False)
class OfferedRequest:
    """A request the device offers: its handler, ``?help`` text and timeout hint (seconds)."""

    name: str
    handler: RequestHandler
    description: str
    timeout_hint: float | None
    signature: inspect.Signature | None


#: The name :class:`OfferedRequest` had before; kept for code that imports it.
RequestInfo = OfferedRequest


class RequestContext:
    """What a request handler gets as its first argument.

    ``ctx.inform(*args)`` sends an inform that belongs to the reply (same name and message id);
    :attr:`device`, :attr:`connection` and :attr:`request` give access to the rest.
    """

    def __init__(self, device: SimulatedDevice, connection: ClientConnection, request: Message,
                 mid: int | None) -> None:
        self.device = device
        self.connection = connection
        self.request = request
        self.mid = mid
        self.informs_sent = 0
        self._after_reply: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return self.request.name

    def inform(self, *args: ArgumentLike) -> None:
        self.connection.send(Message(MessageType.INFORM, self.request.name, args, self.mid))
        self.informs_sent += 1

    def after_reply(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the reply has been queued (``?halt`` uses this)."""
        self._after_reply.append(callback)


def _reply_values(result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, (tuple, list)):
        return list(result)
    return [result]


async def _reply(ctx: RequestContext, info: OfferedRequest) -> list[Any]:
    """The reply's arguments: what the handler returned or raised."""
    request = ctx.request
    try:
        if info.signature is not None:
            try:
                info.signature.bind(ctx, *request.arguments)
            except TypeError as exc:
                raise InvalidReply(str(exc)) from None
        result = info.handler(ctx, *request.arguments)
        if inspect.isawaitable(result):
            result = await result
        return [b"ok", *_reply_values(result)]
    except FailReply as exc:
        return [b"fail", str(exc)]
    except InvalidReply as exc:
        return [b"invalid", str(exc)]
    except Exception as exc:
        logger.info("Handler of ?%s raised; replying fail", request.name, exc_info=True)
        return [b"fail", str(exc) or type(exc).__name__]


class ClientConnection:
    """One client of the device: its connection, its sampling strategies, and what is held
    back while the device is stalled."""

    def __init__(self, device: SimulatedDevice, stream: IOStream, address: Address) -> None:
        self.device = device
        self.stream = stream
        self.address = address
        self.sampling = ConnectionSampling(self._send_sensor_status)
        self._major = device.protocol_flags.major
        # A request line over the limit gets a #log error, as from a real device, not a hang-up.
        self._connection = Connection(stream, max_line_length=device.max_line_length,
                                      on_items=self._on_items, on_closed=self._on_closed,
                                      close_on_long_line=False)
        self._held: list[bytes] = []
        self._waiting: list[Message] = []
        self._tasks = Tasks()
        self._order = asyncio.Lock()
        self._read_task: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<ClientConnection {self.address}>"

    @property
    def closed(self) -> bool:
        return self._connection.closing

    def start(self) -> None:
        self._read_task = self._connection.start()

    # -- output ------------------------------------------------------------------------------

    def send(self, message: Message | bytes) -> None:
        """Queue a message (or raw bytes, sent as they are) for this client.

        Everything queued in one loop iteration goes out in one write. While the device is
        stalled, output is held back and sent when it resumes.
        """
        if self.closed:
            return
        data = message if isinstance(message, bytes) else message.encode()
        if self.device.stalled:
            self._held.append(data)
        else:
            self._connection.send(data)

    def _send_sensor_status(self, sensor: SimulatedSensor) -> None:
        # Updates that fall due while the device is stalled are lost, as from a hung device.
        if not self.device.stalled:
            self._connection.send(sensor.status_line(self._major))

    def log(self, level: str, text: str) -> None:
        """Send ``#log level timestamp logger text`` to this client, if the level is enabled."""
        if self.device.log_enabled(level):
            self.send(self.device.log_message(level, text))

    # -- closing -----------------------------------------------------------------------------

    def abort(self, *, reset: bool = False) -> None:
        """Close at once, dropping queued output; ``reset`` sends a TCP RST instead of a FIN."""
        self._held.clear()
        if reset:
            reset_on_close(self.stream)
        self._connection.close(ConnectionLostError("dropped by the simulated device"))

    async def close(self, timeout: float = 1.0) -> None:
        """Send what is queued (waiting at most ``timeout`` seconds), close, and wait until
        every task of this connection has ended."""
        self._held.clear()
        await self._connection.close_after_sending(
            ConnectionLostError("closed by the simulated device"), timeout)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        if self._read_task is not None:
            await asyncio.shield(self._read_task)
        await self._tasks.wait()

    def _on_closed(self, reason: BaseException) -> None:
        logger.debug("Client %s gone: %s", self.address, reason)
        self._held.clear()
        self._waiting.clear()
        self.sampling.close()
        self._tasks.cancel()
        self.device._forget(self)

    # -- input -------------------------------------------------------------------------------

    def _on_items(self, items: list[ParsedItem]) -> None:
        for item in items:
            if isinstance(item, ValueError):
                self.log("error", f"Bad line from {self.address}: {item}")
            elif self.device.stalled:
                self._waiting.append(Message.from_codec(item))
            else:
                self._dispatch(Message.from_codec(item))

    def _resume(self) -> None:
        held, self._held = self._held, []
        for data in held:
            self._connection.send(data)
        waiting, self._waiting = self._waiting, []
        for message in waiting:
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        if message.mtype is MessageType.REPLY:
            self.log("error", f"Unexpected reply {message}")
            return
        if message.mtype is not MessageType.REQUEST:
            return  # a device may ignore informs from its clients
        # With message ids, a request that has one may run alongside others; the rest are
        # handled one at a time, in the order they came.
        concurrent = self.device.protocol_flags.message_ids and message.mid is not None
        self._tasks.spawn(self._handle(message, ordered=not concurrent))

    async def _handle(self, request: Message, *, ordered: bool) -> None:
        if ordered:
            async with self._order:
                await self._process(request)
        else:
            await self._process(request)

    async def _process(self, request: Message) -> None:
        device = self.device
        mid = request.mid if device.protocol_flags.message_ids else None
        info = device.requests.get(request.name)
        if info is None:
            self.send(Message(MessageType.REPLY, request.name, [b"invalid", "Unknown request."],
                              mid))
            return
        delay = device.delays.get(request.name)
        if delay:
            await asyncio.sleep(delay)
        ctx = RequestContext(device, self, request, mid)
        self.send(Message(MessageType.REPLY, request.name, await _reply(ctx, info), mid))
        for callback in ctx._after_reply:
            callback()
