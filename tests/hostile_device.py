"""A hostile raw-bytes KATCP device for the property-based machines.

Unlike ``SimulatedDevice`` it is scripted at the connection level: a test decides what happens
to each accepted connection (served, closed at once, reset, cut in the middle of its greeting,
half-closed) and how each request is answered (correctly, twice, with informs addressed to
another request or to an id nobody uses, refused, held back, never, or cut off mid-line), and
can send anything (floods, late greetings, ``#interface-changed``) on a connection at any time.

It answers ``?help``, ``?sensor-list``, ``?sensor-value``, ``?sensor-sampling``, ``?watchdog``
and ``?request-timeout-hint`` from a small model that the test controls, and keeps every version
of that model, so that a test can tell what a client synced with it should hold:

* every model change bumps :attr:`HostileDevice.version` and is followed, on the latest
  connection, by ``#x-mark <connection id> <version>`` (after the ``#interface-changed``, if the
  change is announced). A client that has processed the mark has processed the announcement;
* a change that cannot reach the client (not announced, or no writable connection) *taints*
  the latest connection: on it the client cannot know the truth, so no equality is expected.
  So does a refused named ``?help NAME`` / ``?sensor-list NAME``, which reads as "no such
  name";
* :meth:`HostileDevice.expected_model` gives what a client that reports synced on connection
  ``c`` with marks up to ``m`` must hold: the model at ``max(c.accept_version, m)`` (each answer
  at version ``v`` leaves after mark ``v`` on the same stream).

Connections are accepted in a thread of the device's own, as a device in another process
would: a connection closed or reset "at accept" is gone before the client's event loop may
even have seen its connect complete. Everything else runs on the event loop of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from katcp_inspect import KATCP_V4, Message, ProtocolFlags
from katcp_inspect.message import ArgumentLike

T = TypeVar("T")
Entry = Callable[[str, Any], tuple[ArgumentLike, ...]]

#: What each greeting kind sends on accept.
GREETINGS: dict[str, bytes] = {
    "5.1-MIBT": b"#version-connect katcp-protocol 5.1-MIBT\n",
    "5.0-MI": b"#version-connect katcp-protocol 5.0-MI\n",
    "v4": b"#version device-1.0\n#build-state device-1.0.1\n",
    "v4-informs-then-5.1": b"#build-state device-1.0.1\n#version device-1.0\n"
                           b"#version-connect katcp-protocol 5.1-MIBT\n",
    "library-then-5.0": b"#version-connect katcp-library lib-1.0 lib-1.0.0\n"
                        b"#version-connect katcp-protocol 5.0-MI\n",
    "invalid": b"#version-connect katcp-protocol five\n",
    "none": b"",
}
#: The flags a client must negotiate when the whole greeting arrived at once (``None``: no
#: single right answer, e.g. no greeting, whose outcome depends on the client's history).
NEGOTIATES: dict[str, ProtocolFlags | None] = {
    "5.1-MIBT": ProtocolFlags(5, 1, "MIBT"),
    "5.0-MI": ProtocolFlags(5, 0, "MI"),
    "v4": KATCP_V4,
    "v4-informs-then-5.1": ProtocolFlags(5, 1, "MIBT"),
    "library-then-5.0": ProtocolFlags(5, 0, "MI"),
    "invalid": None,
    "none": None,
}
#: Greetings after which the device speaks KATCP 4 (timestamps in milliseconds).
SPEAKS_V4 = frozenset({"v4", "none"})

#: An id no client allocates in a test (they count up from 1).
UNKNOWN_MID = 2**31 - 2
#: Names that are never in any model: seeing them in a client's model means a bogus line got in.
BOGUS_SENSOR = "bogus.sensor"
BOGUS_REQUEST = "bogus-request"
#: A fixed reading time, so that answers are reproducible.
TIMESTAMP = 1700000000.125


@attrs.frozen
class SensorSpec:
    """One sensor as the device describes it in ``?sensor-list``."""

    description: str
    units: str
    type_name: str
    params: tuple[str, ...] = ()

    def value(self) -> bytes:
        """A valid wire value of the sensor's type."""
        if self.type_name in ("discrete", "float", "integer") and self.params:
            return self.params[0].encode()
        return {"boolean": b"1", "integer": b"3", "float": b"1.5"}.get(self.type_name, b"text")


#: Requests every model has: the ones the device answers itself.
BUILTIN_REQUESTS: Mapping[str, str] = {
    "help": "List requests",
    "sensor-list": "List sensors",
    "sensor-value": "Read sensors",
    "sensor-sampling": "Set sampling strategies",
    "watchdog": "Check liveness",
    "request-timeout-hint": "Timeout hints",
}


@attrs.frozen
class Model:
    """The device's requests (name -> description) and sensors (name -> spec), immutable."""

    requests: Mapping[str, str]
    sensors: Mapping[str, SensorSpec]

    def with_request(self, name: str, description: str | None) -> Model:
        """This model with request ``name`` set to ``description`` (removed for ``None``)."""
        requests = dict(self.requests)
        _put(requests, name, description)
        return Model(requests, self.sensors)

    def with_sensor(self, name: str, spec: SensorSpec | None) -> Model:
        sensors = dict(self.sensors)
        _put(sensors, name, spec)
        return Model(self.requests, sensors)


def _put(table: dict[str, T], name: str, value: T | None) -> None:
    if value is None:
        table.pop(name, None)
    else:
        table[name] = value


def default_model() -> Model:
    return Model(dict(BUILTIN_REQUESTS), {
        "temperature": SensorSpec("Temperature", "degC", "float", ("-50", "150")),
        "mode": SensorSpec("Operating mode", "", "discrete", ("idle", "busy")),
    })


@attrs.frozen
class Style:
    """How the device answers one request.

    ``right``: correctly. ``duplicate``: the whole answer twice. ``misaddressed``: first an
    inform and a reply carrying this request's id under another request's name, then the right
    answer. ``unknown-mid``: first informs and a reply with an id nobody used, then the right
    answer. ``fail``: a ``fail`` reply. ``hold``: not now (see :meth:`HostileDevice.release`).
    ``drop``: never. ``cut``: the first ``cut`` fraction of the right answer's bytes, then the
    connection is closed (reset with ``rst``).
    """

    kind: str = "right"
    cut: float = 0.5
    rst: bool = False


STYLE_KINDS = ("right", "duplicate", "misaddressed", "unknown-mid", "fail", "hold", "drop", "cut")


@attrs.frozen
class AcceptScript:
    """What happens to one accepted connection.

    ``serve``: greet with ``greeting`` and answer. ``close`` / ``rst``: close (FIN) or reset at
    once, sending nothing. ``greet-cut``: the first ``cut`` fraction of the greeting, then close
    (reset with ``rst``). ``greet-close``: the whole greeting, then close. ``half-close``: the
    whole greeting, then end the sending direction only (the device still reads).
    """

    kind: str = "serve"
    greeting: str = "5.1-MIBT"
    cut: float = 0.5
    rst: bool = False


ACCEPT_KINDS = ("serve", "close", "rst", "greet-cut", "greet-close", "half-close")


class HostileConnection:
    """The device's side of one accepted connection."""

    def __init__(self, ident: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 peer_port: int, greeting: str, accept_version: int) -> None:
        self.ident = ident
        self.reader = reader
        self.writer = writer
        #: The client's port.
        self.peer_port = peer_port
        self.greeting = greeting
        #: The device's model version when the connection was accepted.
        self.accept_version = accept_version
        #: The flags a client must have negotiated on this connection (None: no expectation).
        self.expected_flags: ProtocolFlags | None = None
        #: A model change the client could not learn of happened while this was the latest.
        self.tainted = False
        self.held: deque[Message] = deque()
        self._eof_sent = False
        self._mid_line = False

    @property
    def v4(self) -> bool:
        return self.greeting in SPEAKS_V4

    @property
    def writable(self) -> bool:
        return not self._eof_sent and not self.writer.transport.is_closing()

    @property
    def closed(self) -> bool:
        return self.writer.transport.is_closing()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (a line may be left unfinished)."""
        if data and self.writable:
            self.writer.write(data)
            self._mid_line = not data.endswith(b"\n")

    def send_lines(self, data: bytes) -> None:
        """Send whole lines, first ending any line left unfinished, so that they arrive intact."""
        self.send_raw(b"\n" + data if self._mid_line else data)

    def close(self) -> None:
        """Close after sending what is queued (FIN)."""
        self.writer.close()

    def reset(self) -> None:
        """Reset the connection (RST): what is queued may be lost."""
        if self.closed:
            return
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            _set_linger_zero(sock)
        self.writer.transport.abort()

    def end(self, rst: bool) -> None:
        if rst:
            self.reset()
        else:
            self.close()

    def half_close(self) -> None:
        """End the sending direction; the device goes on reading."""
        if self.writable and self.writer.can_write_eof():
            self._eof_sent = True
            with contextlib.suppress(OSError):  # the client may have gone already
                self.writer.write_eof()


class HostileDevice:
    """A TCP server on 127.0.0.1 (port 0) playing a hostile device; see the module docstring.

    Tests set :attr:`default_greeting` and :attr:`default_style`, queue one-shot
    :attr:`accept_scripts` and :attr:`styles`, change the model with :meth:`change_model`, and
    act on the latest connection with the other methods.
    """

    def __init__(self, model: Model | None = None) -> None:
        self.history: list[Model] = [model or default_model()]
        self.default_greeting = "5.1-MIBT"
        self.default_style = Style()
        self.accept_scripts: deque[AcceptScript] = deque()
        self.styles: deque[Style] = deque()
        self.connections: list[HostileConnection] = []
        self.port = 0
        self._listener: _Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shut = False
        self._readers: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ listening

    async def listen(self) -> None:
        """Listen (again) on :attr:`port`; the first call picks a free port."""
        if self._listener is None:
            self._loop = asyncio.get_running_loop()
            self._listener = _Listener(self.port, self._accepted)
            self.port = self._listener.port
            self._listener.start()

    def stop_listening(self) -> None:
        """Refuse new connections; accepted ones stay as they are."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    @property
    def listening(self) -> bool:
        return self._listener is not None

    async def shutdown(self) -> None:
        """Stop listening, reset every connection and wait for the readers to end."""
        self.stop_listening()
        self._shut = True
        await asyncio.sleep(0)  # connections handed over by the listener close themselves
        for conn in self.connections:
            conn.reset()
        readers = list(self._readers)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    # ------------------------------------------------------------------ the model

    @property
    def version(self) -> int:
        return len(self.history) - 1

    @property
    def model(self) -> Model:
        return self.history[-1]

    def change_model(self, model: Model, announcement: bytes | None) -> None:
        """Make ``model`` the device's model; send ``announcement`` (a whole ``#interface-changed``
        line) and a mark on the latest connection, or taint it if the client cannot learn of
        the change there."""
        self.history.append(model)
        latest = self.latest
        if latest is None:
            return
        if announcement is None or not latest.writable:
            latest.tainted = True
            return
        latest.send_lines(announcement + b"#x-mark %d %d\n" % (latest.ident, self.version))

    def expected_model(self, conn: HostileConnection, mark: int) -> Model:
        """What a client synced on ``conn`` with marks up to ``mark`` must hold."""
        return self.history[max(conn.accept_version, mark)]

    @property
    def latest(self) -> HostileConnection | None:
        return self.connections[-1] if self.connections else None

    def connection_on_port(self, port: int) -> HostileConnection | None:
        """The accepted connection whose client side is on ``port``."""
        for conn in reversed(self.connections):
            if conn.peer_port == port:
                return conn
        return None

    # ------------------------------------------------------------------ accepting

    def _accepted(self, sock: socket.socket, port: int) -> None:
        """In the listener's thread: run the accept script, and hand over to the event loop
        what is to be served. Closing or resetting here, at once, is what makes the client see
        the connection gone before (or while) its own loop learns that it is connected."""
        try:
            script = self.accept_scripts.popleft()
        except IndexError:
            script = AcceptScript(greeting=self.default_greeting)
        greeting = GREETINGS[script.greeting]
        try:
            if script.kind in ("close", "rst"):
                _end_socket(sock, script.kind == "rst")
                return
            if script.kind == "greet-cut":
                sock.sendall(greeting[:int(len(greeting) * script.cut)])
                _end_socket(sock, script.rst)
                return
            if script.kind == "greet-close":
                sock.sendall(greeting)
                _end_socket(sock, False)
                return
        except OSError:
            sock.close()
            return
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._adopt, sock, port, script)
        except RuntimeError:  # the loop is closed: the test is over
            sock.close()

    def _adopt(self, sock: socket.socket, port: int, script: AcceptScript) -> None:
        if self._shut:
            sock.close()
            return
        task = asyncio.ensure_future(self._serve_new(sock, port, script))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _serve_new(self, sock: socket.socket, port: int, script: AcceptScript) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            sock.close()
            return
        conn = HostileConnection(len(self.connections), reader, writer, port, script.greeting,
                                 self.version)
        self.connections.append(conn)
        conn.send_raw(GREETINGS[script.greeting])
        conn.expected_flags = NEGOTIATES[script.greeting]
        if script.kind == "half-close":
            conn.half_close()
        await self._serve(conn)

    async def _serve(self, conn: HostileConnection) -> None:
        try:
            while True:
                line = await conn.reader.readuntil(b"\n")
                self._on_request(conn, Message.parse(line))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            conn.close()

    def _on_request(self, conn: HostileConnection, request: Message) -> None:
        style = self.styles.popleft() if self.styles else self.default_style
        if style.kind == "hold":
            conn.held.append(request)
        elif style.kind != "drop":
            self.answer(conn, request, style)

    # ------------------------------------------------------------------ answering

    def release(self, style: Style) -> bool:
        """Answer the oldest request held on the latest connection; False if there is none."""
        conn = self.latest
        if conn is None or not conn.held:
            return False
        request = conn.held.popleft()
        if style.kind not in ("hold", "drop"):
            self.answer(conn, request, style)
        return True

    def answer(self, conn: HostileConnection, request: Message, style: Style) -> None:
        """Answer ``request`` on ``conn`` from the current model, in ``style``."""
        lines = [m.encode() for m in self._answer_lines(conn, request)]
        if style.kind == "fail":
            lines = [Message.reply_to_request(request, "fail", "hostile refusal").encode()]
            if request.arguments and request.name in ("help", "sensor-list"):
                # A refused named listing reads as "no such name" (B4): a lie about the model.
                conn.tainted = True
        data = b"".join(lines)
        if style.kind == "duplicate":
            data *= 2
        elif style.kind in ("misaddressed", "unknown-mid"):
            data = b"".join(m.encode() for m in _bogus_lines(request, style.kind)) + data
        if style.kind == "cut":
            conn.send_lines(b"")
            conn.send_raw(data[:max(1, int(len(data) * style.cut))])
            conn.end(style.rst)
        else:
            conn.send_lines(data)

    def _answer_lines(self, conn: HostileConnection, request: Message) -> list[Message]:
        args = [a.decode("utf-8", "surrogateescape") for a in request.arguments]
        model = self.model
        name = request.name
        if name == "help":
            return _listing(request, args, model.requests, lambda n, d: (n, d))
        if name == "sensor-list":
            return _listing(request, args, model.sensors,
                            lambda n, s: (n, s.description, s.units, s.type_name, *s.params))
        if name == "request-timeout-hint":
            return _listing(request, args, model.requests, lambda n, _: (n, 0))
        if name == "sensor-value":
            return _listing(request, args, model.sensors, lambda n, s: (
                self._timestamp(conn), 1, n, "nominal", s.value()))
        if name == "sensor-sampling":
            return self._sampling(conn, request, args)
        if name in model.requests:
            return [Message.reply_to_request(request, "ok")]
        return [Message.reply_to_request(request, "invalid", f"Unknown request {name}")]

    def _sampling(self, conn: HostileConnection, request: Message,
                  args: list[str]) -> list[Message]:
        if not args:
            return [Message.reply_to_request(request, "fail", "No sensor name given")]
        names = args[0].split(",")
        sensors = self.model.sensors
        unknown = [n for n in names if n not in sensors]
        if unknown:
            return [Message.reply_to_request(request, "fail", f"Unknown sensor {unknown[0]}")]
        strategy = args[1:] or ["none"]
        out = [Message.reply_to_request(request, "ok", args[0], *strategy)]
        if strategy[0] != "none":
            out.extend(Message.inform("sensor-status", self._timestamp(conn), 1, n, "nominal",
                                      sensors[n].value()) for n in names)
        return out

    @staticmethod
    def _timestamp(conn: HostileConnection) -> bytes:
        if conn.v4:
            return b"%d" % int(TIMESTAMP * 1000)
        return repr(TIMESTAMP).encode()


class _Listener(threading.Thread):
    """Accepts connections in a thread of its own, as a device in another process would, and
    calls ``on_accept(socket, client port)`` there. Stopping it closes the listening socket,
    so that new connections are refused."""

    def __init__(self, port: int, on_accept: Callable[[socket.socket, int], None]) -> None:
        super().__init__(name="hostile-device-listener", daemon=True)
        self._on_accept = on_accept
        self._stopping = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        # A bound on how long stop() waits where shutdown() does not wake accept().
        self._sock.settimeout(0.02)
        self.port: int = self._sock.getsockname()[1]

    def run(self) -> None:
        try:
            while not self._stopping:
                try:
                    sock, address = self._sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break
                sock.settimeout(None)
                self._on_accept(sock, address[1])
        finally:
            self._sock.close()

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        self.join()


def _set_linger_zero(sock: Any) -> None:
    """Make closing ``sock`` send a reset instead of an orderly close."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _end_socket(sock: socket.socket, rst: bool) -> None:
    if rst:
        _set_linger_zero(sock)
    sock.close()


def _listing(request: Message, args: list[str], table: Mapping[str, Any],
             entry: Entry) -> list[Message]:
    """Informs (``entry(name, value)`` gives their arguments) for every entry of ``table``, or
    only the one named, then the reply: the shape of ``?help``, ``?sensor-list``,
    ``?sensor-value`` and ``?request-timeout-hint``."""
    names = list(table) if not args else [args[0]] if args[0] in table else []
    if args and not names:
        return [Message.reply_to_request(request, "fail", f"Unknown name {args[0]}")]
    informs = [Message.inform(request.name, *entry(n, table[n]), mid=request.mid) for n in names]
    return [*informs, Message.reply_to_request(request, "ok", len(names))]


def _bogus_lines(request: Message, kind: str) -> list[Message]:
    """Lines that look like part of an answer but are not this request's."""
    if kind == "misaddressed":
        if request.mid is None:
            return []  # without ids, a line cannot be addressed to another request
        other = "help" if request.name == "sensor-list" else "sensor-list"
        mid: int | None = request.mid
    else:
        other, mid = request.name, UNKNOWN_MID
    return [
        Message.inform(other, *_bogus_entry(other), mid=mid),
        Message.reply(other, "ok", 1, mid=mid),
    ]


def _bogus_entry(name: str) -> tuple[str, ...]:
    if name == "sensor-list":
        return (BOGUS_SENSOR, "Bogus", "", "integer")
    if name == "help":
        return (BOGUS_REQUEST, "Bogus")
    return ("bogus",)


def format_model(model: Model) -> str:
    """A short readable form of a model, for failure messages."""
    requests = sorted(n for n in model.requests if n not in BUILTIN_REQUESTS)
    return f"extra requests {requests}, sensors {dict(sorted(model.sensors.items()))}"
