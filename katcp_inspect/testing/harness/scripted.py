"""Scripted raw KATCP peers on the running loop: a listening socket whose connections a test
drives line by line (:class:`ScriptedServer`), and one that answers requests from a table of
responders (:class:`ScriptedDevice`).

Unlike :class:`~katcp_inspect.testing.raw_device.RawDevice` (a thread of its own) these run on
the caller's loop, so a test can write to a connection and look at what arrived in between
two awaits. May import the library and :mod:`katcp_inspect.testing.raw_device`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

from ...message import Message
from ..raw_device import GREETING_V5, Responder

__all__ = ["GREETING_V5", "PeerConnection", "Responder", "ScriptedDevice", "ScriptedServer",
           "help_list", "listing", "scripted_device", "scripted_server", "sensor_list"]


class PeerConnection:
    """The server side of one accepted connection, driven line by line by a test."""

    def __init__(self, stream: IOStream) -> None:
        self.stream = stream

    def send(self, data: bytes) -> None:
        if not self.stream.closed():
            self.stream.write(data)

    async def read_message(self, timeout: float = 2.0) -> Message:
        line = await asyncio.wait_for(self.stream.read_until_regex(b"[\r\n]"), timeout)
        return Message.parse(line)

    def close(self) -> None:
        self.stream.close()

    @property
    def closed(self) -> bool:
        return self.stream.closed()


class ScriptedServer(TCPServer):
    """A listening socket whose connections the test drives by hand.

    ``greeting`` is sent on every new connection (``b""`` for none). The listener can be
    stopped and started again on the same port, to refuse connections for a while.
    """

    def __init__(self, greeting: bytes = GREETING_V5) -> None:
        super().__init__()
        self.greeting = greeting
        self.connections: asyncio.Queue[PeerConnection] = asyncio.Queue()
        self.all: list[PeerConnection] = []
        self.port = 0
        self._listeners: list[socket.socket] = []

    def listen_now(self) -> None:
        """Listen (again) on ``port``; the first call picks a free port."""
        self._listeners = bind_sockets(self.port, "127.0.0.1")
        self.port = self._listeners[0].getsockname()[1]
        self.add_sockets(self._listeners)

    def stop_listening(self) -> None:
        """Close the listening socket, so that new connections are refused."""
        for sock in self._listeners:
            fd = sock.fileno()
            # TCPServer offers no per-socket removal; these are its fd-keyed tables.
            self._handlers.pop(fd)()
            self._sockets.pop(fd)
            sock.close()
        self._listeners = []

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        peer = PeerConnection(stream)
        self.all.append(peer)
        if self.greeting:
            peer.send(self.greeting)
        await self.connections.put(peer)

    async def next_connection(self, timeout: float = 2.0) -> PeerConnection:
        return await asyncio.wait_for(self.connections.get(), timeout)

    def shutdown(self) -> None:
        self.stop_listening()
        for peer in self.all:
            peer.close()
        self.stop()


@contextlib.asynccontextmanager
async def scripted_server(greeting: bytes = GREETING_V5) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(greeting)
    server.listen_now()
    try:
        yield server
    finally:
        server.shutdown()


class ScriptedDevice(ScriptedServer):
    """A scripted peer that answers requests: ``responses[name](request)`` gives the lines to
    send back (informs and reply, without the mid: it is added). Unscripted requests get
    ``!name ok``. Tests change ``responses`` and ``greeting`` between connections to play a
    device that is broken, slow or different after a restart."""

    def __init__(self, greeting: bytes = GREETING_V5,
                 responses: dict[str, Responder] | None = None) -> None:
        super().__init__(greeting)
        self.responses: dict[str, Responder] = dict(responses or {})
        self.received: list[Message] = []
        self._readers: list[asyncio.Future[None]] = []

    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        await super().handle_stream(stream, address)
        self._readers.append(asyncio.ensure_future(self._answer(self.all[-1])))

    async def _answer(self, peer: PeerConnection) -> None:
        try:
            while True:
                line = await peer.stream.read_until_regex(b"[\r\n]")
                request = Message.parse(line)
                self.received.append(request)
                respond = self.responses.get(request.name)
                lines = respond(request) if respond else [b"!" + request.name.encode() + b" ok"]
                peer.send(b"".join(self.addressed(out, request) + b"\n" for out in lines))
        except StreamClosedError:
            pass

    def addressed(self, line: bytes, request: Message) -> bytes:
        """``line`` as sent in answer to ``request``: with its message id, if it has one."""
        if request.mid is None:
            return line
        name_end = line.find(b" ") if b" " in line else len(line)
        return line[:name_end] + b"[%d]" % request.mid + line[name_end:]

    def shutdown(self) -> None:
        super().shutdown()
        for reader in self._readers:
            reader.cancel()


def listing(name: str, *entries: bytes) -> Responder:
    """A responder for a listing request (``?help``, ``?sensor-list``): one ``#name entry``
    inform per entry, then ``!name ok N``; with a name argument only that entry, or ``fail``
    when it is unknown, as devices do."""
    wire = name.encode()

    def respond(request: Message) -> list[bytes]:
        chosen = [e for e in entries if not request.arguments
                  or e.split(b" ", 1)[0] == request.arguments[0]]
        if request.arguments and not chosen:
            return [b"!" + wire + b" fail Unknown\\_name"]
        return [b"#" + wire + b" " + e for e in chosen] + [b"!" + wire + b" ok %d" % len(chosen)]

    return respond


def sensor_list(*entries: bytes) -> Responder:
    return listing("sensor-list", *entries)


def help_list(*entries: bytes) -> Responder:
    return listing("help", *entries)


@contextlib.asynccontextmanager
async def scripted_device(greeting: bytes = GREETING_V5,
                          responses: dict[str, Responder] | None = None,
                          kind: type[ScriptedDevice] = ScriptedDevice
                          ) -> AsyncIterator[ScriptedDevice]:
    """A ``kind`` of scripted device listening for the duration of the block."""
    device = kind(greeting, responses)
    device.listen_now()
    try:
        yield device
    finally:
        device.shutdown()
