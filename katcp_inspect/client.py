"""``DeviceClient``: one connection to a KATCP device, the Tornado driver of :class:`ClientCore`.

The core (:mod:`.client_core`) holds the state machine, the requests and the informs, and never
touches a socket; this module resolves the device's name, opens the TCP stream, wraps it in a
:class:`~katcp_inspect.connection.Connection` and reports to the core how each attempt ends.
The states and their invariants are in :mod:`.connection_state`; the names that moved out of
this module are re-exported here.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import Resolver

from .client_core import ClientCore, default_reconnect_backoff
from .connection import Connection
from .connection_state import LEGAL_TRANSITIONS, ConnectionState, IllegalTransitionError
from .errors import (
    ClientClosedError,
    ConnectionLostError,
    KatcpInspectError,
    RequestFailedError,
    RequestInvalidError,
)
from .inform_routing import ArgumentsHook, InformHook
from .message import ArgumentLike, Message, MessageType, MidLike
from .requests_table import ArgumentsReply, InformReader, Reply
from .waiting import start_task, with_timeout

__all__ = [
    "LEGAL_TRANSITIONS",
    "ArgumentsHook",
    "ConnectionState",
    "DeviceClient",
    "IllegalTransitionError",
    "InformHook",
    "Reply",
    "default_reconnect_backoff",
]


class DeviceClient(ClientCore):
    """A KATCP client with inform hooks: connects, negotiates, reconnects, matches replies.

    Construct it anywhere; :meth:`start` it on the event loop it is to run on. Requests,
    waiters and callbacks all belong to that loop.

    Parameters
    ----------
    host, port
        The device's address.
    auto_reconnect
        Reconnect after a failed attempt or a lost connection (after ``reconnect_backoff``).
        Without it the client goes to ``CLOSED`` instead.
    connect_timeout
        Seconds allowed for name resolution plus the TCP connect.
    greeting_timeout
        Seconds to wait for ``#version-connect katcp-protocol`` (or a v4 ``#version``).
    greeting_fallback
        Flags to assume when no greeting arrives in time (default: KATCP v4, since v4 devices
        may greet with nothing). ``None`` makes a missing greeting a failed attempt.
    preset_flags
        Flags to use without waiting for a greeting; a greeting that disagrees is logged.
    default_timeout
        Request timeout when the caller gives none and the device has no larger timeout hint.
    max_line_length
        Longest line accepted from the device; a longer one resets the connection.
    reconnect_backoff
        Delay policy between attempts; reset once a connection has proved healthy.
    healthy_after
        Seconds a negotiated connection must stay up to prove healthy (or
        :meth:`mark_healthy`); only then is ``reconnect_backoff`` reset, so that a device that
        greets and drops at once is retried ever more slowly, not hammered.
    v4_grace
        Seconds to wait, after a KATCP v4 ``#version`` or ``#build-state``, for a
        ``#version-connect katcp-protocol`` that overrides it, before taking the device to be
        v4. Devices send their whole greeting in one burst, so this can be short; if the line
        still comes later, the client reconnects and then waits for it.
    max_reply_informs, max_reply_bytes
        Caps on the reply informs one request may collect (their number, and the bytes of
        their arguments). Past either, the request fails with :class:`ReplyTooLargeError`,
        what it had collected is released and what still comes for it is dropped. The
        defaults let a 100 000-sensor ``?sensor-list`` through with room to spare.
    watchdog_interval, watchdog_timeout
        If an interval is given, ``?watchdog`` is sent that often while connected, and a reply
        slower than ``watchdog_timeout`` (or none) is taken as a dead connection.
    keepalive
        ``True`` (or a :class:`Keepalive`) turns on TCP keepalive on every connection.

    Timeouts, intervals and delays must be finite numbers of seconds, at least 0 (``None``
    where documented); anything else raises ``ValueError``.
    """

    async def __aenter__(self) -> DeviceClient:
        """``async with DeviceClient(host, port) as client:`` starts the client and closes it
        on exit. Entering does not wait for a connection: await :meth:`until_connected` (or
        :meth:`when_connected`) for that, as with aiokatcp's ``Client``."""
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ waiting and requests

    def until_connected(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves when the client is connected and negotiated (``TimeoutError`` after
        ``timeout``). Failures do not end the wait; see :meth:`when_connected` for that."""
        return with_timeout(self._connected_flag.wait(), timeout)

    until_protocol = until_connected

    def until_closed(self) -> asyncio.Future[None]:
        return asyncio.ensure_future(self._wait_closed())

    def when_connected(self, fail_after_failures: int | None = None) -> asyncio.Future[None]:
        """Like Twisted's ``ClientService.whenConnected``.

        Resolves on the next negotiated connection (at once if connected). With
        ``fail_after_failures=N`` it fails with the N-th failed attempt counted from this call.
        It fails with :class:`ClientClosedError` when the client is closed (Twisted cancels).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self.is_connected:
            future.set_result(None)
        elif not self._want_running:
            future.set_exception(ClientClosedError("client is not running"))
        else:
            if fail_after_failures is not None and fail_after_failures < 1:
                raise ValueError("fail_after_failures must be at least 1")
            self._connect_waiters.add(future, fail_after_failures)
        return future

    async def request(self, name: str, *args: ArgumentLike, timeout: float | None = None,
                      mid: MidLike = None, use_mid: bool | None = None) -> Reply:
        """Like :meth:`request_raw`, but a ``fail`` or ``invalid`` reply raises
        :class:`RequestFailedError` or :class:`RequestInvalidError` with the device's text."""
        reply, informs = await self.request_raw(name, *args, timeout=timeout, mid=mid,
                                                use_mid=use_mid)
        if reply.reply_ok():
            return reply, informs
        code = reply.arguments[0] if reply.arguments else b""
        cls = RequestInvalidError if code == b"invalid" else RequestFailedError
        raise cls(reply, informs)

    def request_arguments(self, name: str, *args: ArgumentLike, timeout: float | None = None,
                          read: InformReader = tuple) -> asyncio.Future[ArgumentsReply]:
        """Like :meth:`request_raw`, with each reply inform as the tuple of its arguments
        (what a listing's parser reads): a tuple of bytes is an object the garbage collector
        stops tracking, so a long reply streaming in does not fill its oldest generation.

        ``read``, if given, is called with each inform's arguments (a list of ``bytes``) as
        it arrives, and the reply holds what it returns instead: a long listing is then
        parsed while the device is still writing it. It must not raise (an exception ends
        the connection, as any bug in handling what arrives does)."""
        return self._request(name, args, timeout, None, None, read)

    def future_request(self, msg: Message, timeout: float | None = None,
                       use_mid: bool | None = None) -> asyncio.Future[Reply]:
        """katcp-python's form: send a request :class:`Message`; the future never fails.

        A timeout, a lost connection or "not connected" gives a synthesised ``fail`` reply
        (always reply-typed, unlike katcp-python's: B7) carrying the reason.
        """
        return asyncio.ensure_future(self._future_request(msg, timeout, use_mid))

    async def _future_request(self, msg: Message, timeout: float | None,
                              use_mid: bool | None) -> Reply:
        try:
            return await self.request_raw(msg.name, *msg.arguments, timeout=timeout, mid=msg.mid,
                                          use_mid=use_mid)
        except (KatcpInspectError, ConnectionError, TimeoutError) as exc:
            return Message(MessageType.REPLY, msg.name, (Message.FAIL, str(exc)), msg.mid), []

    # ------------------------------------------------------------------ hooks and callbacks

    def hook_inform(self, name: str, hook: InformHook) -> None:
        """Call ``hook(message)`` for every ``#name`` inform, including informs that are part of
        a reply. Adding the same hook twice has no effect."""
        self._informs.hook_inform(name, hook)

    def unhook_inform(self, name: str, hook: InformHook) -> None:
        self._informs.unhook_inform(name, hook)

    def hook_inform_arguments(self, name: str, hook: ArgumentsHook) -> None:
        """Call ``hook(arguments)`` with the raw argument list of every ``#name`` inform.

        The fast path: no :class:`Message` is built for an inform that only such hooks want.
        """
        self._informs.hook_arguments(name, hook)

    def unhook_inform_arguments(self, name: str, hook: ArgumentsHook) -> None:
        self._informs.unhook_arguments(name, hook)

    def hook_unhandled_inform(self, hook: InformHook) -> None:
        """Call ``hook(message)`` for informs that nothing else took (no hook, no request)."""
        self._informs.hook_unhandled(hook)

    def add_connected_callback(self, cb: Callable[[], Any]) -> None:
        self.connected_callbacks.add(cb)

    def add_disconnected_callback(self, cb: Callable[[], Any]) -> None:
        self.disconnected_callbacks.add(cb)

    def add_failed_connect_callback(self, cb: Callable[[BaseException], Any]) -> None:
        self.failed_connect_callbacks.add(cb)

    # ------------------------------------------------------------------ connecting

    def _begin_attempt(self) -> asyncio.Future[None]:
        return start_task(self._connect())

    async def _connect(self) -> None:
        try:
            stream = await self._open_stream()
        except asyncio.TimeoutError:
            self._fail_attempt(ConnectionLostError(
                f"no connection to {self.address} within {self.connect_timeout} s"))
            return
        except Exception as exc:
            self._fail_attempt(exc)
            return
        try:
            self._stream_connected(stream)
        except Exception as exc:
            # A bug of ours must end this attempt only, never leave the client dead.
            self.logger.exception("Error setting up the connection to %s; this attempt ends",
                                  self.address)
            stream.close()
            self._abandon(stream, exc)

    async def _open_stream(self) -> IOStream:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        addresses = await asyncio.wait_for(Resolver().resolve(self.host, self.port),
                                           self.connect_timeout)
        error: BaseException = OSError(f"no address for {self.host}")
        for family, address in addresses:
            stream = IOStream(socket.socket(family, socket.SOCK_STREAM),
                              max_write_buffer_size=64 * 1024 * 1024)
            try:
                await asyncio.wait_for(stream.connect(address), deadline - loop.time())
                return stream
            except (OSError, StreamClosedError, asyncio.TimeoutError) as exc:
                error = _connect_error(stream, exc)
                stream.close()
                if loop.time() >= deadline:
                    break
            except BaseException:  # cancelled by close(): no socket left behind
                stream.close()
                raise
        raise error

    def _attempt_is_current(self) -> bool:
        # A cancelled connect task whose last await had already finished is not interrupted:
        # it runs on, and must not act for an attempt that close() has abandoned.
        return self._connect_task is not None and self._connect_task is asyncio.current_task()

    def _fail_attempt(self, error: BaseException) -> None:
        if self._attempt_is_current():
            self._attempt_failed(error)

    def _abandon(self, stream: IOStream, error: BaseException) -> None:
        """End the attempt or connection that ``stream`` belongs to, wherever it had got to."""
        if self._attempt_is_current():
            self._attempt_failed(error)
        elif (isinstance(self._connection, Connection) and self._connection.stream is stream
              and self._state in (ConnectionState.NEGOTIATING, ConnectionState.CONNECTED)):
            self._drop(error)

    def _stream_connected(self, stream: IOStream) -> None:
        if not self._attempt_is_current():
            stream.close()
            return
        # The device may have closed the connection already (a port forwarder with nothing
        # behind it, a device at its client limit): that is a failed attempt like any other.
        sock = stream.socket
        if stream.closed() or sock is None:
            self._attempt_failed(ConnectionLostError(
                f"{self.address} closed the connection as soon as it was made"))
            return
        try:
            stream.set_nodelay(True)
            if self.keepalive is not None:
                self.keepalive.apply(sock)
        except OSError as exc:
            stream.close()
            self._attempt_failed(exc)
            return
        connection = Connection(stream, max_line_length=self.max_line_length,
                                on_items=self._receiver.on_items, on_closed=self._on_closed)
        # Reading starts before the state changes: from NEGOTIATING on, the end of the read
        # loop is what takes the client out of the connection, whatever ends it.
        self._track_closing(connection.start())
        self._attempt_succeeded(connection)


def _connect_error(stream: IOStream, exc: BaseException) -> BaseException:
    if isinstance(exc, StreamClosedError) and exc.real_error is not None:
        return exc.real_error
    if stream.error is not None and isinstance(stream.error, BaseException):
        return stream.error
    return exc
