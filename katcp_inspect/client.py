"""``DeviceClient``: one connection to a KATCP device, driven by an explicit state machine.

States and what the client holds in each (the invariants, checked by :meth:`check_invariants`
whenever the event loop runs or a user callback is called)::

    state          connection   connect task   sleep handle   last_error   closed flag
    CONNECTING     no           yes            no             any          no
    NEGOTIATING    yes          no             no             any          no
    CONNECTED      yes          no             no             None         no
    DISCONNECTING  yes          no             no             set          no
    SLEEPING       no           no             yes            set          no
    CLOSED         no           no             no             set          yes

``is_connected`` is true iff the state is CONNECTED, which means *negotiated*: the protocol
version and flags of this connection are known. Every transition happens in :meth:`_set_state`;
callbacks and waiters run at its end, once everything above holds.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import Resolver

from . import codec
from .backoff import ExponentialRandomBackoff
from .codec import ParsedItem
from .connection import Connection, Keepalive, is_line_too_long
from .errors import (
    ClientClosedError,
    ConnectionLostError,
    KatcpInspectError,
    LineTooLongError,
    NotConnectedError,
    ProtocolError,
    ReplyTooLargeError,
    RequestFailedError,
    RequestInvalidError,
    RequestTimeoutError,
)
from .message import MAX_MID, ArgumentLike, Message, MessageType, MidLike
from .protocol import KATCP_V4, ProtocolFlags
from .stats import ClientStats, OnceLogger
from .text import printable
from .waiting import Flag, check_timeout, drain, start_task, with_timeout

_REPLY = codec.REPLY
_INFORM = codec.INFORM

Reply = tuple[Message, list[Message]]
InformHook = Callable[[Message], Any]
ArgumentsHook = Callable[[list[bytes]], Any]


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    NEGOTIATING = "negotiating"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    SLEEPING = "sleeping"
    CLOSED = "closed"


def default_reconnect_backoff() -> ExponentialRandomBackoff:
    """Reconnect quickly after a blip (first retry within 0.1 s), back off to 30 s for a device
    that stays away, and spread a herd of clients over most of each interval."""
    return ExponentialRandomBackoff(delay_initial=0.1, delay_max=30.0, exp_fac=2.0, randomicity=0.9)


class _Pending:
    """A request in flight (or queued behind another of the same name on a device without ids)."""

    __slots__ = ("future", "inform_bytes", "informs", "key", "message", "overflowed", "sent",
                 "timeout_handle")

    def __init__(self, message: Message, key: bytes, future: asyncio.Future[Reply]) -> None:
        self.message = message
        self.key = key
        self.future = future
        self.informs: list[Message] = []
        #: Bytes of the informs' arguments, against ``max_reply_bytes``.
        self.inform_bytes = 0
        #: Failed for exceeding a cap: what still comes for it is dropped.
        self.overflowed = False
        self.timeout_handle: asyncio.TimerHandle | None = None
        self.sent = False


class _Callbacks:
    """An ordered list of callbacks whose exceptions are logged, counted and contained."""

    def __init__(self, owner: DeviceClient, what: str) -> None:
        self._owner = owner
        self._what = what
        self._items: list[Callable[..., Any]] = []

    def add(self, cb: Callable[..., Any]) -> None:
        if cb not in self._items:
            self._items.append(cb)

    def remove(self, cb: Callable[..., Any]) -> None:
        self._items.remove(cb)

    def __bool__(self) -> bool:
        return bool(self._items)

    def run(self, *args: Any) -> None:
        for cb in list(self._items):
            try:
                cb(*args)
            except Exception:
                self._owner.stats.callback_errors += 1
                self._owner.logger.exception("%s %r raised", self._what, cb)


class DeviceClient:
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

    def __init__(
        self,
        host: str,
        port: int,
        *,
        auto_reconnect: bool = True,
        connect_timeout: float = 10.0,
        greeting_timeout: float = 5.0,
        greeting_fallback: ProtocolFlags | None = KATCP_V4,
        preset_flags: ProtocolFlags | None = None,
        default_timeout: float = 5.0,
        max_line_length: int = 16 * 1024 * 1024,
        reconnect_backoff: ExponentialRandomBackoff | None = None,
        watchdog_interval: float | None = None,
        watchdog_timeout: float = 5.0,
        keepalive: bool | Keepalive = False,
        logger: logging.Logger | None = None,
        healthy_after: float = 10.0,
        v4_grace: float = 0.1,
        max_reply_informs: int = 500_000,
        max_reply_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        for what, value in (("connect_timeout", connect_timeout),
                            ("greeting_timeout", greeting_timeout),
                            ("default_timeout", default_timeout),
                            ("watchdog_timeout", watchdog_timeout),
                            ("healthy_after", healthy_after), ("v4_grace", v4_grace)):
            check_timeout(value, what, allow_none=False)
        check_timeout(watchdog_interval, "watchdog_interval")
        if watchdog_interval == 0:
            raise ValueError("watchdog_interval must be more than 0 seconds")
        if max_reply_informs < 1 or max_reply_bytes < 1:
            raise ValueError("max_reply_informs and max_reply_bytes must be at least 1")
        self.host = host or "127.0.0.1"
        self.port = port
        self.auto_reconnect = auto_reconnect
        self.connect_timeout = connect_timeout
        self.greeting_timeout = greeting_timeout
        self.greeting_fallback = greeting_fallback
        self.preset_flags = preset_flags
        self.default_timeout = default_timeout
        self.max_line_length = max_line_length
        self.reconnect_backoff = reconnect_backoff or default_reconnect_backoff()
        self.watchdog_interval = watchdog_interval
        self.watchdog_timeout = watchdog_timeout
        self.keepalive: Keepalive | None = (
            Keepalive() if keepalive is True else (keepalive or None))
        self.healthy_after = healthy_after
        self.v4_grace = v4_grace
        self.max_reply_informs = max_reply_informs
        self.max_reply_bytes = max_reply_bytes
        self.logger = logger or logging.getLogger("katcp_inspect.client")
        self._problems = OnceLogger(self.logger)

        #: Flags of the current connection, or of the most recent one while disconnected.
        self.protocol_flags: ProtocolFlags | None = None
        #: ``#version-connect`` (or v4 ``#version`` / ``#build-state``) of the current connection.
        self.versions: dict[str, tuple[str, ...]] = {}
        #: Loop time of the most recent successful negotiation.
        self.last_connect_time: float | None = None
        #: Timeout hints (seconds) by request name; the inspecting client fills this in.
        self.timeout_hints: dict[str, float] = {}
        self.stats = ClientStats()

        self._state = ConnectionState.CLOSED
        self._last_error: BaseException | None = NotConnectedError("client not started")
        self._want_running = False
        self._failures_in_a_row = 0
        #: Whether this device has ever greeted with katcp-protocol (then it is not v4).
        self._device_greets = False
        #: Whether this connection's flags are assumed (v4 by default), not announced.
        self._assumed_flags = False
        #: Whether this connection's greeting included a v4 ``#version`` / ``#build-state``.
        self._v4_greeting = False
        #: Whether this device has sent katcp-protocol after the ``v4_grace`` (then the whole
        #: greeting timeout is given to it).
        self._greets_late = False
        #: Whether the current connection is yet to prove healthy (see ``healthy_after``).
        self._on_probation = False
        #: Whether the connection ends because the user asked (no warning then).
        self._user_disconnect = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Connection | None = None
        #: The connection whose messages are being handled (none while disconnecting).
        self._receiving: Connection | None = None
        self._connect_task: asyncio.Future[None] | None = None
        self._sleep_handle: asyncio.TimerHandle | None = None
        self._greeting_handle: asyncio.TimerHandle | None = None
        self._watchdog_handle: asyncio.TimerHandle | None = None
        self._healthy_handle: asyncio.TimerHandle | None = None
        self._closing_tasks: set[asyncio.Future[Any]] = set()
        self._connected_flag = Flag()
        self._closed_flag = Flag(True)
        self._connect_waiters: dict[asyncio.Future[None], int | None] = {}

        self._next_mid = 1
        self._by_mid: dict[int, _Pending] = {}
        self._by_name: dict[bytes, deque[_Pending]] = {}

        self._inform_hooks: dict[bytes, list[InformHook]] = {}
        self._argument_hooks: dict[bytes, list[ArgumentsHook]] = {}
        self._unhandled_hooks: list[InformHook] = []
        self._fast_informs: dict[bytes, list[ArgumentsHook]] = {}
        self._builtin_informs: dict[bytes, Callable[[Message], None]] = {
            b"version-connect": self._inform_version_connect,
            b"version": self._inform_v4_greeting,
            b"build-state": self._inform_v4_greeting,
            b"disconnect": self._inform_disconnect,
        }
        self.connected_callbacks = _Callbacks(self, "connected callback")
        self.disconnected_callbacks = _Callbacks(self, "disconnected callback")
        self.failed_connect_callbacks = _Callbacks(self, "failed-connect callback")
        self._resolver = Resolver()

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_connected(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    @property
    def last_error(self) -> BaseException | None:
        """Why the client is not connected (``None`` while connected)."""
        return self._last_error

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Started and not (being) closed."""
        return self._want_running

    def check_invariants(self) -> None:
        """Assert the invariants in the module docstring (used by the tests)."""
        s = self._state
        S = ConnectionState
        assert self.is_connected == (s is S.CONNECTED)
        assert self._connected_flag.is_set() == (s is S.CONNECTED)
        assert self._closed_flag.is_set() == (s is S.CLOSED)
        assert (self._connection is not None) == (s in (S.NEGOTIATING, S.CONNECTED,
                                                        S.DISCONNECTING))
        assert (self._connect_task is not None) == (s is S.CONNECTING)
        assert (self._sleep_handle is not None) == (s is S.SLEEPING)
        assert (self._greeting_handle is not None) <= (s is S.NEGOTIATING)
        assert (self._watchdog_handle is not None) <= (s is S.CONNECTED)
        assert (self._healthy_handle is not None) <= (s is S.CONNECTED)
        if s in (S.SLEEPING, S.CLOSED, S.DISCONNECTING):
            assert self._last_error is not None
        if s is S.CONNECTED:
            assert self._last_error is None
            assert self.protocol_flags is not None
        else:
            assert not self._by_mid
            assert not self._by_name

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start connecting (on the running event loop). Starting a running client does nothing."""
        loop = asyncio.get_running_loop()
        if self._want_running:
            return
        if self._state is not ConnectionState.CLOSED:
            # Still finishing a close(): the pending transition to CLOSED will restart us.
            self._want_running = True
            return
        self._loop = loop
        self._want_running = True
        self._set_state(ConnectionState.CONNECTING)

    def close(self) -> asyncio.Future[None]:
        """Stop for good: drop any connection and stop reconnecting.

        Pending requests fail with :class:`ClientClosedError`. The returned future resolves once
        the socket is really closed and no task or timer of the client is left.
        """
        self._want_running = False
        s = self._state
        if s in (ConnectionState.CONNECTING, ConnectionState.SLEEPING):
            self._set_state(ConnectionState.CLOSED, ClientClosedError("client closed"))
        elif s in (ConnectionState.NEGOTIATING, ConnectionState.CONNECTED):
            self._set_state(ConnectionState.DISCONNECTING, ClientClosedError("client closed"))
        return asyncio.ensure_future(self._wait_closed())

    async def _wait_closed(self) -> None:
        await self._closed_flag.wait()
        await drain(self._closing_tasks)

    def disconnect(self, reason: str = "disconnected by the client") -> None:
        """Drop the current connection; the client reconnects if it is set to."""
        if self._state in (ConnectionState.NEGOTIATING, ConnectionState.CONNECTED):
            self._user_disconnect = True
            self._set_state(ConnectionState.DISCONNECTING, ConnectionLostError(reason))

    def mark_healthy(self) -> None:
        """Declare the current connection healthy now (e.g. once a sync completed), rather
        than after ``healthy_after`` seconds: the reconnect backoff returns to its start."""
        if self._healthy_handle is not None:
            self._healthy_handle.cancel()
            self._proved_healthy()

    def _proved_healthy(self) -> None:
        self._healthy_handle = None
        self.reconnect_backoff.success()

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
            self._connect_waiters[future] = fail_after_failures
            future.add_done_callback(self._forget_connect_waiter)
        return future

    def _forget_connect_waiter(self, future: asyncio.Future[None]) -> None:
        self._connect_waiters.pop(future, None)

    # ------------------------------------------------------------------ the state machine

    def _set_state(self, new: ConnectionState, error: BaseException | None = None) -> None:
        old = self._state
        assert new is not old, f"transition {old} -> {new}"
        S = ConnectionState
        if error is not None:
            self._last_error = error
        self._state = new
        self.logger.debug("%s: %s -> %s (%s)", self.address, old.value, new.value, str(error))

        # Release what the old state held and the new one does not.
        if old is S.CONNECTING and self._connect_task is not None:
            task, self._connect_task = self._connect_task, None
            if not task.done():
                task.cancel()
                self._track_closing(task)
        if old is S.SLEEPING and self._sleep_handle is not None:
            self._sleep_handle.cancel()
            self._sleep_handle = None
        if old is S.NEGOTIATING and self._greeting_handle is not None:
            self._greeting_handle.cancel()
            self._greeting_handle = None
        if old is S.CONNECTED:
            self._connected_flag.clear()
            self.stats.disconnects += 1
            if self._watchdog_handle is not None:
                self._watchdog_handle.cancel()
                self._watchdog_handle = None
            self._on_probation = self._healthy_handle is not None
            if self._healthy_handle is not None:
                self._healthy_handle.cancel()
                self._healthy_handle = None
                self.stats.short_connections += 1
            self._fail_pending(self._loss_error())
        if new in (S.CONNECTING, S.SLEEPING, S.CLOSED):
            self._connection = None
        self._receiving = self._connection if new in (S.NEGOTIATING, S.CONNECTED) else None
        if new is not S.CLOSED:
            self._closed_flag.clear()

        # Start what the new state does.
        loop = self._loop
        assert loop is not None
        if new is S.CONNECTING:
            self.stats.connection_attempts += 1
            self._user_disconnect = False
            self._on_probation = False
            self._connect_task = start_task(self._connect())
        elif new is S.NEGOTIATING:
            self.versions = {}
            self._assumed_flags = False
            self._v4_greeting = False
            self._greeting_handle = loop.call_later(self.greeting_timeout, self._greeting_timed_out)
        elif new is S.CONNECTED:
            self._last_error = None
            self.last_connect_time = loop.time()
            self.stats.connections += 1
            # Not reset yet: a device that greets and drops at once must meet a growing backoff.
            self._healthy_handle = loop.call_later(self.healthy_after, self._proved_healthy)
            self._connected_flag.set()
            self._schedule_watchdog()
        elif new is S.DISCONNECTING:
            assert self._connection is not None
            assert self._last_error is not None
            self._connection.close(self._last_error)
        elif new is S.SLEEPING:
            delay = self.reconnect_backoff.delay
            self.reconnect_backoff.failed()
            self._sleep_handle = loop.call_later(delay, self._wake)
            if self._on_probation and not self._user_disconnect:
                self._warn_short_connection(delay, loop.time())
        elif new is S.CLOSED:
            self._closed_flag.set()

        # Tell the world, now that the client is consistent.
        if old is S.CONNECTED:
            self.disconnected_callbacks.run()
        if new is S.CONNECTED:
            self._resolve_connect_waiters()
            self.connected_callbacks.run()
        if old in (S.CONNECTING, S.NEGOTIATING) and new not in (S.NEGOTIATING, S.CONNECTED):
            self.stats.connect_failures += 1
            assert self._last_error is not None
            self._count_connect_failure(self._last_error)
            if self._want_running:
                # A device that stays away must not fill the log: warn once per outage.
                level = logging.DEBUG if self._failures_in_a_row else logging.WARNING
                self.logger.log(level, "Failed to connect to %s: %s (retrying)", self.address,
                                str(self._last_error))
            self._failures_in_a_row += 1
            self.failed_connect_callbacks.run(self._last_error)
        if new is S.CLOSED:
            self._connected_flag.fail(ClientClosedError("client closed"))
            self._fail_connect_waiters(ClientClosedError("client closed"))
            if self._want_running:  # start() was called while we were closing
                self._want_running = False
                self.start()

    def _warn_short_connection(self, delay: float, now: float) -> None:
        lasted = now - (self.last_connect_time or now)
        self._problems.log(
            "short-connection", "The connection to %s ended %.2f s after it was negotiated "
            "(%s); retrying in %.2f s, backing off further until a connection lasts %g s",
            self.address, lasted, printable(str(self._last_error)), delay, self.healthy_after)

    def _loss_error(self) -> ConnectionLostError:
        error = self._last_error
        if isinstance(error, ConnectionLostError):
            return error
        lost = ConnectionLostError(f"connection to {self.address} lost: {error}")
        lost.__cause__ = error
        return lost

    def _after_loss(self) -> ConnectionState:
        if self._want_running and self.auto_reconnect:
            return ConnectionState.SLEEPING
        self._want_running = False
        return ConnectionState.CLOSED

    def _wake(self) -> None:
        self._sleep_handle = None
        self._set_state(ConnectionState.CONNECTING)

    def _track_closing(self, task: asyncio.Future[Any]) -> None:
        self._closing_tasks.add(task)
        task.add_done_callback(self._closing_tasks.discard)

    def _resolve_connect_waiters(self) -> None:
        waiters = list(self._connect_waiters)
        self._connect_waiters.clear()
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _count_connect_failure(self, error: BaseException) -> None:
        for future, remaining in list(self._connect_waiters.items()):
            if remaining is None:
                continue
            if remaining <= 1:
                del self._connect_waiters[future]
                if not future.done():
                    future.set_exception(error)
            else:
                self._connect_waiters[future] = remaining - 1

    def _fail_connect_waiters(self, error: BaseException) -> None:
        waiters = list(self._connect_waiters)
        self._connect_waiters.clear()
        for future in waiters:
            if not future.done():
                future.set_exception(error)

    # ------------------------------------------------------------------ connecting

    async def _connect(self) -> None:
        try:
            stream = await self._open_stream()
        except asyncio.TimeoutError:
            self._attempt_failed(ConnectionLostError(
                f"no connection to {self.address} within {self.connect_timeout} s"))
            return
        except Exception as exc:
            self._attempt_failed(exc)
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
        addresses = await asyncio.wait_for(self._resolver.resolve(self.host, self.port),
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

    def _attempt_failed(self, error: BaseException) -> None:
        if not self._attempt_is_current():
            return
        self._connect_task = None
        self._set_state(self._after_loss(), error)

    def _abandon(self, stream: IOStream, error: BaseException) -> None:
        """End the attempt or connection that ``stream`` belongs to, wherever it had got to."""
        if self._attempt_is_current():
            self._attempt_failed(error)
        elif (self._connection is not None and self._connection.stream is stream
              and self._state in (ConnectionState.NEGOTIATING, ConnectionState.CONNECTED)):
            self._set_state(ConnectionState.DISCONNECTING, error)

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
                                on_items=self._on_items, on_closed=self._on_closed)
        # Reading starts before the state changes: from NEGOTIATING on, the end of the read
        # loop is what takes the client out of the connection, whatever ends it.
        self._track_closing(connection.start())
        self._connect_task = None
        self._connection = connection
        self._set_state(ConnectionState.NEGOTIATING)
        if self.preset_flags is not None:
            self._negotiated(self.preset_flags)

    def _negotiated(self, flags: ProtocolFlags) -> None:
        self.protocol_flags = flags
        after = f" after {self._failures_in_a_row} failed attempts" \
            if self._failures_in_a_row else ""
        self.logger.info("Connected to %s (KATCP %s)%s", self.address, flags, after)
        self._failures_in_a_row = 0
        self._set_state(ConnectionState.CONNECTED)

    def _greeting_timed_out(self) -> None:
        self._greeting_handle = None
        # A device that has greeted with katcp-protocol before is slow now, not a v4 device.
        if self._v4_greeting:
            self.logger.debug("%s greeted as KATCP 4: no katcp-protocol line followed",
                              self.address)
            self._greets_late = False
            self._assumed_flags = True
            self._negotiated(KATCP_V4)
        elif self.greeting_fallback is not None and not self._device_greets:
            self.logger.info("%s sent no protocol greeting within %g s; assuming KATCP %s",
                             self.address, self.greeting_timeout, self.greeting_fallback)
            self._assumed_flags = True
            self._negotiated(self.greeting_fallback)
        else:
            self._set_state(ConnectionState.DISCONNECTING, ProtocolError(
                f"{self.address} sent no protocol greeting within {self.greeting_timeout} s"))

    def _on_closed(self, reason: BaseException) -> None:
        S = ConnectionState
        if self._state is S.DISCONNECTING:
            self._set_state(self._after_loss())
        elif self._state in (S.NEGOTIATING, S.CONNECTED):
            if isinstance(reason, LineTooLongError):  # found before the line's end arrived
                self._long_line()
            self._set_state(self._after_loss(), reason)

    # ------------------------------------------------------------------ receiving

    def _on_items(self, items: list[ParsedItem]) -> None:
        # The hot path: a flood of #sensor-status goes through the first branch only.
        connection = self._receiving
        if connection is None:
            return
        fast = self._fast_informs
        by_name = self._by_name
        for item in items:
            if self._receiving is not connection:
                return  # a message before this one ended the connection
            if isinstance(item, ValueError):
                self._bad_line(item)
                continue
            mtype = item.mtype
            if mtype is _INFORM:
                name = item.name
                hooks = fast.get(name)
                if hooks is not None and item.mid is None and name not in by_name:
                    arguments = item.arguments
                    for hook in hooks:
                        try:
                            hook(arguments)
                        except Exception:
                            self._hook_failed(hook, name)
                else:
                    self._handle_inform(item)
            elif mtype is _REPLY:
                self._handle_reply(item)
            else:
                self.stats.unexpected_requests += 1
                self._problems.log("request", "%s sent us a request ?%s; ignored", self.address,
                                   item.name.decode("ascii"))

    def _bad_line(self, error: ValueError) -> None:
        if is_line_too_long(error):
            self._long_line()
            if self._connection is not None:
                self._set_state(ConnectionState.DISCONNECTING, LineTooLongError(
                    f"{self.address} sent a line over {self.max_line_length} bytes"))
            return
        self.stats.bad_lines += 1
        self._problems.log("bad-line", "%s sent a malformed line (%s); skipped", self.address,
                           error)

    def _long_line(self) -> None:
        self.stats.long_lines += 1
        self._problems.log("long-line", "%s sent a line over %d bytes; connection reset",
                           self.address, self.max_line_length)

    def _handle_inform(self, raw: Any) -> None:
        name = raw.name
        handled = False
        message: Message | None = None
        mid = raw.mid
        if mid is not None:
            pending = self._by_mid.get(mid)
            if pending is None:
                self.stats.unmatched_informs += 1
                self._problems.log("unmatched-inform", "%s: inform #%s[%d] matches no pending "
                                   "request (late or unknown)", self.address,
                                   printable(name), mid)
            elif pending.key != name and not pending.overflowed:
                self._misaddressed(raw, pending)
                return
            else:
                if not self._collect(pending, raw):
                    return
                message = pending.informs[-1]
                handled = True
        else:
            queue = self._by_name.get(name)
            if queue and queue[0].sent:
                if not self._collect(queue[0], raw):
                    return
                message = queue[0].informs[-1]
                handled = True
        arg_hooks = self._argument_hooks.get(name)
        if arg_hooks is not None:
            handled = True
            for hook in arg_hooks:
                try:
                    hook(raw.arguments)
                except Exception:
                    self._hook_failed(hook, name)
        builtin = self._builtin_informs.get(name)
        hooks = self._inform_hooks.get(name)
        if builtin is None and hooks is None and (handled or not self._unhandled_hooks):
            return
        if message is None:
            message = Message.from_codec(raw)
        if builtin is not None:
            builtin(message)
            handled = True
        if hooks is not None:
            handled = True
            self._run_hooks(hooks, message, name)
        if not handled:
            self._run_hooks(self._unhandled_hooks, message, name)

    def _run_hooks(self, hooks: list[InformHook], message: Message, name: bytes) -> None:
        for hook in hooks:
            try:
                hook(message)
            except Exception:
                self._hook_failed(hook, name)

    def _hook_failed(self, hook: Callable[..., Any], name: bytes) -> None:
        self.stats.callback_errors += 1
        self.logger.exception("Inform hook %r for #%s raised", hook, name.decode("ascii"))

    def _collect(self, pending: _Pending, raw: Any) -> bool:
        """Add a reply inform to its request, within the caps; whether it was added."""
        if pending.overflowed:
            self.stats.overflow_dropped += 1
            return False
        pending.inform_bytes += sum(map(len, raw.arguments))
        if (len(pending.informs) >= self.max_reply_informs
                or pending.inform_bytes > self.max_reply_bytes):
            self._overflow(pending)
            return False
        pending.informs.append(Message.from_codec(raw))
        return True

    def _overflow(self, pending: _Pending) -> None:
        # The request stays in the tables, so that the rest of its reply is recognised and
        # dropped (not taken for another request's), until the reply or its timeout.
        pending.overflowed = True
        count = len(pending.informs)
        pending.informs = []
        self.stats.oversized_replies += 1
        self.stats.overflow_dropped += 1
        error = ReplyTooLargeError(
            f"?{pending.message.name} to {self.address}: the reply exceeded {count} informs or "
            f"{pending.inform_bytes} bytes (caps: max_reply_informs={self.max_reply_informs}, "
            f"max_reply_bytes={self.max_reply_bytes}); the rest of it is dropped")
        self._problems.log("oversized-reply", "%s", str(error))
        if not pending.future.done():
            pending.future.set_exception(error)

    def _misaddressed(self, raw: Any, pending: _Pending) -> None:
        self.stats.misaddressed += 1
        kind = "!" if raw.mtype is _REPLY else "#"
        self._problems.log("misaddressed", "%s: %s%s[%d] carries the id of ?%s; dropped",
                           self.address, kind, printable(raw.name), raw.mid,
                           pending.message.name)

    def _handle_reply(self, raw: Any) -> None:
        mid = raw.mid
        pending: _Pending | None
        if mid is not None:
            pending = self._by_mid.get(mid)
            if pending is not None and pending.key != raw.name:
                self._misaddressed(raw, pending)
                return
        else:
            queue = self._by_name.get(raw.name)
            pending = queue[0] if queue and queue[0].sent else None
        if pending is None:
            self.stats.unmatched_replies += 1
            self._problems.log("unmatched-reply", "%s: reply !%s%s matches no pending request "
                               "(late or unknown); dropped", self.address,
                               printable(raw.name), "" if mid is None else f"[{mid}]")
            return
        self._finish(pending)
        if pending.overflowed:
            self.stats.overflow_dropped += 1
        elif not pending.future.done():
            pending.future.set_result((Message.from_codec(raw), pending.informs))

    def _inform_version_connect(self, message: Message) -> None:
        if len(message.arguments) < 2:
            return
        role = message.format_argument(0)
        self.versions[role] = tuple(a.decode("utf-8", "backslashreplace")
                                    for a in message.arguments[1:])
        if role != "katcp-protocol":
            return
        try:
            flags = ProtocolFlags.parse_version(message.arguments[1])
        except ProtocolError as exc:
            if self._state is ConnectionState.NEGOTIATING:
                self._set_state(ConnectionState.DISCONNECTING, exc)
            else:
                self._problems.log("late-greeting", "%s: %s (ignored: already connected as %s)",
                                   self.address, str(exc), self.protocol_flags)
            return
        self._device_greets = True
        if self._state is ConnectionState.NEGOTIATING:
            self._negotiated(flags)
        elif flags == self.protocol_flags:
            pass
        elif self._assumed_flags and self._state is ConnectionState.CONNECTED:
            # The greeting was late, not missing: everything decided on the assumed version
            # (timestamp units, ids, hints) is wrong. Start again on a fresh connection.
            self._greets_late = True
            self._set_state(ConnectionState.DISCONNECTING, ProtocolError(
                f"{self.address} greeted with KATCP {flags} after the client had assumed "
                f"{self.protocol_flags}; reconnecting"))
        else:
            self._problems.log("late-greeting", "%s announced KATCP %s but the client uses %s",
                               self.address, flags, self.protocol_flags)

    def _inform_v4_greeting(self, message: Message) -> None:
        self.versions[message.name] = tuple(a.decode("utf-8", "backslashreplace")
                                            for a in message.arguments)
        if self._state is not ConnectionState.NEGOTIATING or self._v4_greeting:
            return
        self._v4_greeting = True
        if self._greets_late:
            return  # its katcp-protocol line came late before: give it the whole timeout
        # Only the katcp-protocol line decides, and a KATCP 5 device may send it after a
        # #build-state: wait for it a little (it comes in the same burst), not the whole
        # greeting timeout, which would delay every connection to a real v4 device.
        loop = asyncio.get_running_loop()
        handle = self._greeting_handle
        if handle is not None and handle.when() > loop.time() + self.v4_grace:
            handle.cancel()
            self._greeting_handle = loop.call_later(self.v4_grace, self._greeting_timed_out)

    def _inform_disconnect(self, message: Message) -> None:
        reason = printable(message.arguments[0]) if message.arguments else "no reason given"
        self.logger.info("%s is disconnecting us: %s", self.address, reason)
        if self._connection is not None and self._state is not ConnectionState.DISCONNECTING:
            self._set_state(ConnectionState.DISCONNECTING,
                            ConnectionLostError(f"{self.address} disconnected us: {reason}"))

    # ------------------------------------------------------------------ hooks and callbacks

    def hook_inform(self, name: str, hook: InformHook) -> None:
        """Call ``hook(message)`` for every ``#name`` inform, including informs that are part of
        a reply. Adding the same hook twice has no effect."""
        _add_hook(self._inform_hooks, name, hook)
        self._update_fast_informs()

    def unhook_inform(self, name: str, hook: InformHook) -> None:
        _remove_hook(self._inform_hooks, name, hook)
        self._update_fast_informs()

    def hook_inform_arguments(self, name: str, hook: ArgumentsHook) -> None:
        """Call ``hook(arguments)`` with the raw argument list of every ``#name`` inform.

        The fast path: no :class:`Message` is built for an inform that only such hooks want.
        """
        _add_hook(self._argument_hooks, name, hook)
        self._update_fast_informs()

    def unhook_inform_arguments(self, name: str, hook: ArgumentsHook) -> None:
        _remove_hook(self._argument_hooks, name, hook)
        self._update_fast_informs()

    def _update_fast_informs(self) -> None:
        """Informs that only argument hooks want skip building a :class:`Message`."""
        self._fast_informs = {
            name: hooks for name, hooks in self._argument_hooks.items()
            if name not in self._inform_hooks and name not in self._builtin_informs}

    def hook_unhandled_inform(self, hook: InformHook) -> None:
        """Call ``hook(message)`` for informs that nothing else took (no hook, no request)."""
        if hook not in self._unhandled_hooks:
            self._unhandled_hooks.append(hook)

    def add_connected_callback(self, cb: Callable[[], Any]) -> None:
        self.connected_callbacks.add(cb)

    def add_disconnected_callback(self, cb: Callable[[], Any]) -> None:
        self.disconnected_callbacks.add(cb)

    def add_failed_connect_callback(self, cb: Callable[[BaseException], Any]) -> None:
        self.failed_connect_callbacks.add(cb)

    # ------------------------------------------------------------------ requests

    def request_raw(self, name: str, *args: ArgumentLike, timeout: float | None = None,
                    mid: MidLike = None, use_mid: bool | None = None
                    ) -> asyncio.Future[Reply]:
        """Send ``?name args...``; the future gives ``(reply, informs)`` whatever the reply says.

        It fails with :class:`NotConnectedError`, :class:`ConnectionLostError` (or
        :class:`ClientClosedError`) or :class:`RequestTimeoutError`. ``timeout`` defaults to
        ``default_timeout``, or the device's timeout hint for ``name`` when that is longer; pass
        ``math.inf`` for none (NaN or a negative timeout raises ``ValueError``). ``use_mid``
        (default: when the device supports ids) and ``mid`` (an explicit id) control message
        ids; without an id, requests of the same name are
        sent one at a time, since only the name can match their replies.
        """
        check_timeout(timeout, "timeout", allow_inf=True)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        if not self.is_connected:
            future.set_exception(NotConnectedError(
                f"not connected to {self.address}: {self._last_error}"))
            return future
        flags = self.protocol_flags
        assert flags is not None
        try:
            if use_mid is None:
                use_mid = flags.message_ids or mid is not None
            if use_mid and not flags.message_ids:
                raise ProtocolError(f"{self.address} (KATCP {flags}) does not support message ids")
            if use_mid:
                mid = self._allocate_mid(mid)
            message = Message(MessageType.REQUEST, name, args, mid if use_mid else None)
        except KatcpInspectError as exc:
            future.set_exception(exc)
            return future
        pending = _Pending(message, message.name.encode("ascii"), future)
        if timeout is None:
            timeout = max(self.default_timeout, self.timeout_hints.get(name, 0.0))
        if timeout != float("inf"):
            pending.timeout_handle = loop.call_later(timeout, self._timed_out, pending, timeout)
        if message.mid is not None:
            self._by_mid[message.mid] = pending
            self._send(pending)
        else:
            queue = self._by_name.setdefault(pending.key, deque())
            queue.append(pending)
            if len(queue) == 1:
                self._send(pending)
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

    def _allocate_mid(self, mid: MidLike) -> int:
        if mid is not None:
            checked = Message(MessageType.REQUEST, "x", (), mid).mid
            assert checked is not None
            if checked in self._by_mid:
                raise ProtocolError(f"message id {checked} is already in use")
            return checked
        for _ in range(len(self._by_mid) + 1):
            candidate = self._next_mid
            self._next_mid = candidate + 1 if candidate < MAX_MID else 1
            if candidate not in self._by_mid:
                return candidate
        raise AssertionError("unreachable: more pending requests than ids tried")

    def _send(self, pending: _Pending) -> None:
        assert self._connection is not None
        pending.sent = True
        self.stats.requests += 1
        self._connection.send(pending.message.encode())

    def _finish(self, pending: _Pending) -> None:
        """Take a request out of the tables (and send the next of its name, if queued)."""
        if pending.timeout_handle is not None:
            pending.timeout_handle.cancel()
            pending.timeout_handle = None
        mid = pending.message.mid
        if mid is not None:
            self._by_mid.pop(mid, None)
            return
        queue = self._by_name.get(pending.key)
        if queue is None:
            return
        was_head = queue[0] is pending
        queue.remove(pending)
        if not queue:
            del self._by_name[pending.key]
        elif was_head and self._connection is not None:
            self._send(queue[0])

    def _timed_out(self, pending: _Pending, timeout: float) -> None:
        pending.timeout_handle = None
        self._finish(pending)
        if pending.overflowed:
            return  # already failed; only its place in the tables was kept
        self.stats.request_timeouts += 1
        if not pending.future.done():
            pending.future.set_exception(RequestTimeoutError(
                f"?{pending.message.name} to {self.address} timed out after {timeout:g} s"))

    def _fail_pending(self, error: BaseException) -> None:
        everything = list(self._by_mid.values())
        for queue in self._by_name.values():
            everything.extend(queue)
        self._by_mid.clear()
        self._by_name.clear()
        for pending in everything:
            if pending.timeout_handle is not None:
                pending.timeout_handle.cancel()
            if not pending.future.done():
                pending.future.set_exception(error)

    # ------------------------------------------------------------------ liveness

    def _schedule_watchdog(self) -> None:
        if self.watchdog_interval is not None:
            assert self._loop is not None
            self._watchdog_handle = self._loop.call_later(self.watchdog_interval,
                                                          self._send_watchdog)

    def _send_watchdog(self) -> None:
        self._watchdog_handle = None
        future = self.request_raw("watchdog", timeout=self.watchdog_timeout)
        future.add_done_callback(self._watchdog_done)

    def _watchdog_done(self, future: asyncio.Future[Reply]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, RequestTimeoutError) and self.is_connected:
            self.stats.liveness_failures += 1
            self._set_state(ConnectionState.DISCONNECTING, ConnectionLostError(
                f"{self.address} did not answer ?watchdog within {self.watchdog_timeout:g} s"))
        elif self.is_connected and self._watchdog_handle is None:
            self._schedule_watchdog()


H = TypeVar("H")


def _add_hook(table: dict[bytes, list[H]], name: str, hook: H) -> None:
    hooks = table.setdefault(name.encode("ascii"), [])
    if hook not in hooks:
        hooks.append(hook)


def _remove_hook(table: dict[bytes, list[H]], name: str, hook: H) -> None:
    key = name.encode("ascii")
    hooks = table.get(key, [])
    if hook in hooks:
        hooks.remove(hook)
    if not hooks:
        table.pop(key, None)


def _connect_error(stream: IOStream, exc: BaseException) -> BaseException:
    if isinstance(exc, StreamClosedError) and exc.real_error is not None:
        return exc.real_error
    if stream.error is not None and isinstance(stream.error, BaseException):
        return stream.error
    return exc

