"""The device client without I/O: the connection's lifecycle (see :mod:`.connection_state`), the
requests sent on it and the informs it receives, on a clock it is handed.

:class:`ClientCore` never touches a socket. A driver (``DeviceClient``, or a fake in the tests)
makes connection attempts when asked (:meth:`ClientCore._begin_attempt`), reports how they end
(``_attempt_succeeded`` with a :class:`Link`, ``_attempt_failed``), and feeds the core what the
link receives (``_receiver.on_items``) and when it is gone (``_on_closed``). Timers come from
:meth:`ClientCore._timers`. Imports the modules of its parts (connection_state,
requests_table, inform_routing, negotiation, liveness, receiving), and backoff, connection (for
``Keepalive`` only), errors, message, protocol, stats, text and waiting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Generic, Protocol, TypeVar, overload

from .backoff import ExponentialRandomBackoff
from .connection import Keepalive
from .connection_state import LEGAL_TRANSITIONS, ConnectionState, check_transition
from .errors import (
    ClientClosedError,
    ConnectionLostError,
    KatcpInspectError,
    LineTooLongError,
    NotConnectedError,
    ProtocolError,
)
from .inform_routing import Callbacks, InformRouter
from .liveness import Watchdog
from .message import ArgumentLike, Message, MessageType, MidLike
from .negotiation import Negotiation
from .protocol import KATCP_V4, ProtocolFlags
from .receiving import Receiver
from .requests_table import InformReader, Reply, RequestTable
from .stats import ClientStats, OnceLogger
from .text import printable
from .waiting import ConnectWaiters, Flag, Timer, Timers, check_timeout, drain

_S = ConnectionState
T = TypeVar("T")

__all__ = ["LEGAL_TRANSITIONS", "ClientCore", "Link"]


class Link(Protocol):
    """What the core needs of a connection: to send bytes, and to close it."""

    def send(self, data: bytes) -> None: ...

    def close(self, reason: BaseException) -> None: ...


def default_reconnect_backoff() -> ExponentialRandomBackoff:
    """Reconnect quickly after a blip (first retry within 0.1 s), back off to 30 s for a device
    that stays away, and spread a herd of clients over most of each interval."""
    return ExponentialRandomBackoff(delay_initial=0.1, delay_max=30.0, exp_fac=2.0, randomicity=0.9)


def _check_options(timeouts: dict[str, float], watchdog_interval: float | None,
                   max_reply_informs: int, max_reply_bytes: int) -> None:
    for what, value in timeouts.items():
        check_timeout(value, what, allow_none=False)
    check_timeout(watchdog_interval, "watchdog_interval")
    if watchdog_interval == 0:
        raise ValueError("watchdog_interval must be more than 0 seconds")
    if max_reply_informs < 1 or max_reply_bytes < 1:
        raise ValueError("max_reply_informs and max_reply_bytes must be at least 1")


class _Forwarded(Generic[T]):
    """A client attribute that lives on one of its parts (which reads it when it needs it)."""

    def __init__(self, part: str, name: str) -> None:
        self._part = part
        self._name = name

    @overload
    def __get__(self, obj: None, owner: Any) -> _Forwarded[T]: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> T: ...

    def __get__(self, obj: object | None, owner: Any) -> T | _Forwarded[T]:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self._part), self._name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self._part), self._name, value)


class ClientCore:
    """The state machine, requests and informs of a device client; see the module docstring.

    The parameters are ``DeviceClient``'s, which documents them. ``connect_timeout``,
    ``max_line_length`` and ``keepalive`` are only kept here for the driver.
    """

    greeting_timeout: _Forwarded[float] = _Forwarded("_negotiation", "timeout")
    greeting_fallback: _Forwarded[ProtocolFlags | None] = _Forwarded("_negotiation", "fallback")
    v4_grace: _Forwarded[float] = _Forwarded("_negotiation", "v4_grace")
    max_reply_informs: _Forwarded[int] = _Forwarded("_requests", "max_informs")
    max_reply_bytes: _Forwarded[int] = _Forwarded("_requests", "max_bytes")
    max_line_length: _Forwarded[int] = _Forwarded("_receiver", "max_line_length")
    watchdog_interval: _Forwarded[float | None] = _Forwarded("_watchdog", "interval")
    watchdog_timeout: _Forwarded[float] = _Forwarded("_watchdog", "timeout")
    #: Flags of the current connection, or of the most recent one while disconnected.
    protocol_flags: _Forwarded[ProtocolFlags | None] = _Forwarded("_negotiation", "flags")
    #: ``#version-connect`` (or v4 ``#version`` / ``#build-state``) of the current connection.
    versions: _Forwarded[dict[str, tuple[str, ...]]] = _Forwarded("_negotiation", "versions")

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
        _check_options({"connect_timeout": connect_timeout, "greeting_timeout": greeting_timeout,
                        "default_timeout": default_timeout, "watchdog_timeout": watchdog_timeout,
                        "healthy_after": healthy_after, "v4_grace": v4_grace},
                       watchdog_interval, max_reply_informs, max_reply_bytes)
        self.host = host or "127.0.0.1"
        self.port = port
        self.auto_reconnect = auto_reconnect
        self.connect_timeout = connect_timeout
        self.preset_flags = preset_flags
        self.default_timeout = default_timeout
        self.reconnect_backoff = reconnect_backoff or default_reconnect_backoff()
        self.keepalive: Keepalive | None = (
            Keepalive() if keepalive is True else (keepalive or None))
        self.healthy_after = healthy_after
        self.logger = logger or logging.getLogger("katcp_inspect.client")
        self._problems = OnceLogger(self.logger)
        #: Loop time of the most recent successful negotiation.
        self.last_connect_time: float | None = None
        #: Timeout hints (seconds) by request name; the inspecting client fills this in.
        self.timeout_hints: dict[str, float] = {}
        self.stats = ClientStats()
        self._init_lifecycle()
        self._init_parts(greeting_timeout, greeting_fallback, v4_grace, max_line_length,
                         max_reply_informs, max_reply_bytes)
        self._watchdog = Watchdog(watchdog_interval, watchdog_timeout, self._call_later,
                                  self.request_raw, self._watchdog_unanswered)

    def _init_parts(self, greeting_timeout: float, greeting_fallback: ProtocolFlags | None,
                    v4_grace: float, max_line_length: int, max_reply_informs: int,
                    max_reply_bytes: int) -> None:
        self._requests = RequestTable(
            self._send_bytes, self._call_later, self.stats, self._problems,
            lambda: self.address, max_informs=max_reply_informs, max_bytes=max_reply_bytes)
        self._negotiation = Negotiation(
            timeout=greeting_timeout, fallback=greeting_fallback, v4_grace=v4_grace,
            logger=self.logger, problems=self._problems, address=lambda: self.address,
            decided=self._negotiated, drop=self._drop)
        self._informs = InformRouter({
            b"version-connect": self._negotiation.version_connect,
            b"version": self._negotiation.v4_greeting,
            b"build-state": self._negotiation.v4_greeting,
            b"disconnect": self._inform_disconnect,
        }, self.stats, self.logger)
        self._receiver = Receiver(self._requests, self._informs, self.stats, self._problems,
                                  lambda: self.address, self._drop, max_line_length)
        self.connected_callbacks = Callbacks(self.stats, self.logger, "connected callback")
        self.disconnected_callbacks = Callbacks(self.stats, self.logger, "disconnected callback")
        self.failed_connect_callbacks = Callbacks(self.stats, self.logger,
                                                  "failed-connect callback")

    def _init_lifecycle(self) -> None:
        self._state = _S.CLOSED
        self._last_error: BaseException | None = NotConnectedError("client not started")
        self._want_running = False
        self._failures_in_a_row = 0
        #: Whether the current connection is yet to prove healthy (see ``healthy_after``).
        self._on_probation = False
        #: Whether the connection ends because the user asked (no warning then).
        self._user_disconnect = False
        self._loop: Timers | None = None
        self._connection: Link | None = None
        self._connect_task: asyncio.Future[None] | None = None
        self._sleep_handle: Timer | None = None
        self._healthy_handle: Timer | None = None
        self._closing_tasks: set[asyncio.Future[Any]] = set()
        self._connected_flag = Flag()
        self._closed_flag = Flag(True)
        self._connect_waiters = ConnectWaiters()

    # ------------------------------------------------------------------ what the driver does

    def _timers(self) -> Timers:
        """The clock to run on, fixed by :meth:`start`."""
        return asyncio.get_running_loop()

    def _begin_attempt(self) -> asyncio.Future[None]:
        """Start an attempt (its task), to end in ``_attempt_succeeded`` or ``_attempt_failed``."""
        raise NotImplementedError

    def _call_later(self, delay: float, callback: Any, *args: Any) -> Timer:
        assert self._loop is not None, "timers are used only once started"
        return self._loop.call_later(delay, callback, *args)

    def _send_bytes(self, data: bytes) -> None:
        assert self._connection is not None, "requests are sent only while connected"
        self._connection.send(data)

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_connected(self) -> bool:
        return self._state is _S.CONNECTED

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
        """Assert the invariants of :mod:`katcp_inspect.connection_state` (used by the tests)."""
        s = self._state
        assert self.is_connected == (s is _S.CONNECTED)
        assert self._connected_flag.is_set() == (s is _S.CONNECTED)
        assert self._closed_flag.is_set() == (s is _S.CLOSED)
        assert (self._connection is not None) == (s in (_S.NEGOTIATING, _S.CONNECTED,
                                                        _S.DISCONNECTING))
        assert (self._connect_task is not None) == (s is _S.CONNECTING)
        assert (self._sleep_handle is not None) == (s is _S.SLEEPING)
        assert self._negotiation.waiting <= (s is _S.NEGOTIATING)
        assert self._watchdog.scheduled <= (s is _S.CONNECTED)
        assert (self._healthy_handle is not None) <= (s is _S.CONNECTED)
        if s in (_S.SLEEPING, _S.CLOSED, _S.DISCONNECTING):
            assert self._last_error is not None
        if s is _S.CONNECTED:
            assert self._last_error is None
            assert self.protocol_flags is not None
        else:
            assert not self._requests

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start connecting (on the running event loop). Starting a running client does nothing."""
        timers = self._timers()
        if self._want_running:
            return
        self._want_running = True
        if self._state is _S.CLOSED:
            self._loop = timers
            self._set_state(_S.CONNECTING)
        # Otherwise still finishing a close(): the pending transition to CLOSED restarts us.

    def close(self) -> asyncio.Future[None]:
        """Stop for good: drop any connection and stop reconnecting.

        Pending requests fail with :class:`ClientClosedError`. The returned future resolves once
        the socket is really closed and no task or timer of the client is left.
        """
        self._want_running = False
        s = self._state
        if s in (_S.CONNECTING, _S.SLEEPING):
            self._set_state(_S.CLOSED, ClientClosedError("client closed"))
        elif s in (_S.NEGOTIATING, _S.CONNECTED):
            self._set_state(_S.DISCONNECTING, ClientClosedError("client closed"))
        return asyncio.ensure_future(self._wait_closed())

    async def _wait_closed(self) -> None:
        await self._closed_flag.wait()
        await drain(self._closing_tasks)

    def disconnect(self, reason: str = "disconnected by the client") -> None:
        """Drop the current connection; the client reconnects if it is set to."""
        if self._state in (_S.NEGOTIATING, _S.CONNECTED):
            self._user_disconnect = True
            self._set_state(_S.DISCONNECTING, ConnectionLostError(reason))

    def mark_healthy(self) -> None:
        """Declare the current connection healthy now (e.g. once a sync completed), rather
        than after ``healthy_after`` seconds: the reconnect backoff returns to its start."""
        if self._healthy_handle is not None:
            self._healthy_handle.cancel()
            self._proved_healthy()

    def _proved_healthy(self) -> None:
        self._healthy_handle = None
        self.reconnect_backoff.success()

    # ------------------------------------------------------------------ the state machine

    def _set_state(self, new: ConnectionState, error: BaseException | None = None) -> None:
        """The one place where the state changes: release what the old state held, start what
        the new one does, then tell the world, once everything is consistent."""
        old = self._state
        check_transition(old, new)
        if error is not None:
            self._last_error = error
        self._state = new
        self.logger.debug("%s: %s -> %s (%s)", self.address, old.value, new.value, str(error))
        self._leave(old, new)
        self._enter(new)
        self._announce(old, new)

    def _leave(self, old: ConnectionState, new: ConnectionState) -> None:
        """Release what the old state held and the new one does not."""
        if old is _S.CONNECTING and self._connect_task is not None:
            task, self._connect_task = self._connect_task, None
            if not task.done():
                task.cancel()
                self._track_closing(task)
        elif old is _S.SLEEPING and self._sleep_handle is not None:
            self._sleep_handle.cancel()
            self._sleep_handle = None
        elif old is _S.NEGOTIATING:
            self._negotiation.end()
        elif old is _S.CONNECTED:
            self._leave_connected()
        if new in (_S.CONNECTING, _S.SLEEPING, _S.CLOSED):
            self._connection = None
        self._receiver.link = self._connection if new in (_S.NEGOTIATING, _S.CONNECTED) else None
        if new is not _S.CLOSED:
            self._closed_flag.clear()

    def _leave_connected(self) -> None:
        self._connected_flag.clear()
        self.stats.disconnects += 1
        self._watchdog.stop()
        self._on_probation = self._healthy_handle is not None
        if self._healthy_handle is not None:
            self._healthy_handle.cancel()
            self._healthy_handle = None
            self.stats.short_connections += 1
        self._requests.fail_all(self._loss_error())

    def _enter(self, new: ConnectionState) -> None:
        """Start what the new state does."""
        loop = self._loop
        assert loop is not None, "a client changes state only once started"
        if new is _S.CONNECTING:
            self.stats.connection_attempts += 1
            self._user_disconnect = False
            self._on_probation = False
            self._connect_task = self._begin_attempt()
        elif new is _S.NEGOTIATING:
            self._negotiation.begin(loop)
        elif new is _S.CONNECTED:
            self._last_error = None
            self.last_connect_time = loop.time()
            self.stats.connections += 1
            # Not reset yet: a device that greets and drops at once must meet a growing backoff.
            self._healthy_handle = loop.call_later(self.healthy_after, self._proved_healthy)
            self._connected_flag.set()
            self._watchdog.start()
        elif new is _S.DISCONNECTING:
            assert self._connection is not None and self._last_error is not None
            self._connection.close(self._last_error)
        elif new is _S.SLEEPING:
            delay = self.reconnect_backoff.delay
            self.reconnect_backoff.failed()
            self._sleep_handle = loop.call_later(delay, self._wake)
            if self._on_probation and not self._user_disconnect:
                self._warn_short_connection(delay, loop.time())
        else:
            self._closed_flag.set()

    def _announce(self, old: ConnectionState, new: ConnectionState) -> None:
        """Tell the world, now that the client is consistent."""
        if old is _S.CONNECTED:
            self.disconnected_callbacks.run()
        if new is _S.CONNECTED:
            self._connect_waiters.resolve()
            self.connected_callbacks.run()
        if old in (_S.CONNECTING, _S.NEGOTIATING) and new not in (_S.NEGOTIATING, _S.CONNECTED):
            self._announce_failed_attempt()
        if new is _S.CLOSED:
            self._connected_flag.fail(ClientClosedError("client closed"))
            self._connect_waiters.fail(ClientClosedError("client closed"))
            if self._want_running:  # start() was called while we were closing
                self._want_running = False
                self.start()

    def _announce_failed_attempt(self) -> None:
        error = self._last_error
        assert error is not None
        self.stats.connect_failures += 1
        self._connect_waiters.count_failure(error)
        if self._want_running:
            # A device that stays away must not fill the log, nor vanish from it: warn once
            # per outage, then a summary every period while it lasts.
            self._problems.log("connect", "Failed to connect to %s: %s (retrying)",
                               self.address, printable(str(error)))
        self._failures_in_a_row += 1
        self.failed_connect_callbacks.run(error)

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
            return _S.SLEEPING
        self._want_running = False
        return _S.CLOSED

    def _wake(self) -> None:
        self._sleep_handle = None
        self._set_state(_S.CONNECTING)

    def _track_closing(self, task: asyncio.Future[Any]) -> None:
        self._closing_tasks.add(task)
        task.add_done_callback(self._closing_tasks.discard)

    # ------------------------------------------------------------------ what the driver reports

    def _attempt_failed(self, error: BaseException) -> None:
        """The current attempt failed (the driver has checked that it is current)."""
        self._connect_task = None
        self._set_state(self._after_loss(), error)

    def _attempt_succeeded(self, link: Link) -> None:
        """The current attempt has a link, which is already reading."""
        self._connect_task = None
        self._connection = link
        self._set_state(_S.NEGOTIATING)
        if self.preset_flags is not None:
            self._negotiation.decide(self.preset_flags)

    def _negotiated(self, flags: ProtocolFlags) -> None:
        failures = self._failures_in_a_row
        after = f" after {failures} failed attempts" if failures else ""
        self.logger.info("Connected to %s (KATCP %s)%s", self.address, flags, after)
        self._failures_in_a_row = 0
        self._problems.forget("connect")
        self._set_state(_S.CONNECTED)

    def _drop(self, error: BaseException) -> None:
        """Drop the current connection (negotiating or connected) with ``error``."""
        self._set_state(_S.DISCONNECTING, error)

    def _on_closed(self, reason: BaseException) -> None:
        if self._state is _S.DISCONNECTING:
            self._set_state(self._after_loss())
        elif self._state in (_S.NEGOTIATING, _S.CONNECTED):
            if isinstance(reason, LineTooLongError):  # found before the line's end arrived
                self._receiver.long_line()
            self._set_state(self._after_loss(), reason)

    # ------------------------------------------------------------------ receiving

    def _inform_disconnect(self, message: Message) -> None:
        reason = printable(message.arguments[0]) if message.arguments else "no reason given"
        self.logger.info("%s is disconnecting us: %s", self.address, reason)
        if self._connection is not None and self._state is not _S.DISCONNECTING:
            self._drop(ConnectionLostError(f"{self.address} disconnected us: {reason}"))

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
        return self._request(name, args, timeout, mid, use_mid)

    def _request(self, name: str, args: tuple[ArgumentLike, ...], timeout: float | None,
                 mid: MidLike, use_mid: bool | None, read: InformReader | None = None
                 ) -> asyncio.Future[Any]:
        check_timeout(timeout, "timeout", allow_inf=True)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            message = self._request_message(name, args, mid, use_mid)
        except KatcpInspectError as exc:
            future.set_exception(exc)
            return future
        if timeout is None:
            timeout = max(self.default_timeout, self.timeout_hints.get(name, 0.0))
        self._requests.add(message, future, timeout, read=read)
        return future

    def _request_message(self, name: str, args: tuple[ArgumentLike, ...], mid: MidLike,
                         use_mid: bool | None) -> Message:
        flags = self.protocol_flags
        if not self.is_connected or flags is None:
            raise NotConnectedError(f"not connected to {self.address}: {self._last_error}")
        if use_mid is None:
            use_mid = flags.message_ids or mid is not None
        if use_mid and not flags.message_ids:
            raise ProtocolError(f"{self.address} (KATCP {flags}) does not support message ids")
        if use_mid:
            mid = self._requests.allocate_mid(mid)
        return Message(MessageType.REQUEST, name, args, mid if use_mid else None)

    def _watchdog_unanswered(self) -> None:
        self.stats.liveness_failures += 1
        self._drop(ConnectionLostError(
            f"{self.address} did not answer ?watchdog within {self.watchdog_timeout:g} s"))
